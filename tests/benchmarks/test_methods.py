"""The benchmark's methods compute what their row says, and its options are checked."""

from __future__ import annotations

import pytest
import torch
from benchmarks.models import problem

from benchmarks import run as bench


def _double(name: str, n: int = 4):
    model, X, y = problem(name, n)
    return model.double(), X.double() if X.is_floating_point() else X, y


@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_torch_func_ggn_diagonal_matches_fisherlab_and_a_loop(name):
    model, X, y = _double(name)
    ours = bench.fisherlab_method(model, X, y, "ggn_diag")()["ggn_diag"]
    ours = torch.cat([ours[p].flatten() for p in model.parameters()])
    theirs = bench.func_method(model, X, y, "ggn_diag")()
    theirs = torch.cat([theirs[k].flatten() for k, _ in model.named_parameters()])
    # explicit loop: (1/N) sum_n sum_k (J_n^T S_n[:, k])^2, S_n S_n^T = diag(p) - p p^T
    params = list(model.parameters())
    loop = torch.zeros_like(ours)
    for i in range(X.shape[0]):
        f = model(X[i : i + 1])[0]
        p = f.detach().softmax(-1)
        S = torch.diag(p.sqrt()) - p.sqrt()[:, None] * p[None, :]
        for k in range(S.shape[0]):
            g = torch.autograd.grad(f, params, S[k], retain_graph=True, allow_unused=True)
            pairs = zip(g, params, strict=True)
            flat = [torch.zeros_like(q) if gi is None else gi for gi, q in pairs]
            loop += torch.cat([t.flatten() for t in flat]).square() / X.shape[0]
    assert torch.allclose(ours, loop, rtol=1e-10, atol=1e-14)
    assert torch.allclose(theirs, loop, rtol=1e-10, atol=1e-14)


def test_torch_func_mc_diagonal_is_the_square_of_a_sampled_gradient():
    model, X, y = _double("mlp", n=1)
    mc = bench.func_method(model, X, y, "mc_diag")()
    # one sample: the MC diagonal is g(ŷ)^2 for one label ŷ; some class reproduces it
    candidates = []
    for c in range(10):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(X), torch.tensor([c])).backward()
        candidates.append(torch.cat([p.grad.flatten().square() for p in model.parameters()]))
    flat = torch.cat([mc[k].flatten() for k, _ in model.named_parameters()])
    assert any(torch.allclose(flat, cand, rtol=1e-10, atol=1e-14) for cand in candidates)


def test_per_sample_rows_agree():
    model, X, y = _double("transformer")
    ours = bench.fisherlab_method(model, X, y, "per_sample")()["per_sample_gradients"]
    theirs = bench.func_method(model, X, y, "per_sample")()
    a = torch.cat([ours[p].flatten(1) for p in model.parameters()], 1)
    b = torch.cat([theirs[k].flatten(1) for k, _ in model.named_parameters()], 1)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_backpack_covers_the_resnet_and_refuses_incomplete_results():
    pytest.importorskip("backpack")
    model, X, y = problem("resnet", 2)
    for row in ("first_order", "per_sample", "mc_diag", "ggn_diag"):
        bench.backpack_method(model, X, y, row)
    model, X, y = problem("transformer", 2)
    with pytest.raises(NotImplementedError, match="no extension for"):
        bench.backpack_method(model, X, y, "first_order")


def test_product_checks_name_both_libraries():
    pytest.importorskip("curvlinops")
    checks = bench.product_checks("mlp", 4)
    assert set(checks) == {"ggn_vp", "hvp", "efvp"}
    for row in checks.values():
        assert row["fisherlab_vs_curvlinops"] < 1e-10
    assert checks["hvp"]["fisherlab_vs_autograd"] < 1e-10


def test_best_peer_of_a_row_with_another_rows_result():
    rows = {
        "per_sample": {
            "fisherlab": {"ratio": 2.0},
            "backpack": {"ratio": 3.0},
            "torch.func": {"ratio": 2.5},
        },
        "per_sample_reuse": {"fisherlab": {"ratio": 1.0}, "backpack": {"ratio": None}},
        "hvp": {"fisherlab": {"ratio": 1.0}, "curvlinops": {"ratio": None}},
    }
    assert bench.best_peer(rows, "per_sample") == ("torch.func", 2.5)
    assert bench.best_peer(rows, "per_sample_reuse") == ("torch.func", 2.5)
    assert bench.best_peer(rows, "hvp") is None


def test_loglog_slope():
    xs = [16.0, 32.0, 64.0, 128.0]
    assert bench.loglog_slope(xs, [3 * x for x in xs]) == pytest.approx(1.0)
    assert bench.loglog_slope(xs, [x**2 for x in xs]) == pytest.approx(2.0)


def test_timing_synchronises_around_every_call():
    events: list[str] = []
    methods = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    medians = bench.time_interleaved(methods, reps=2, warmup=1, sync=lambda: events.append("s"))
    assert set(medians) == {"a", "b"}
    # warm-up a, b; then every timed call is bracketed by synchronisations
    assert events[:2] == ["a", "b"]
    assert events[2:] == ["s"] + ["s", "a", "s", "s", "b", "s"] * 2


def test_device_argument():
    assert bench.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device"):
        bench.resolve_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            bench.resolve_device("cuda")
        with pytest.raises(SystemExit):
            bench.main(["--device", "cuda", "--quick"])
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0"])
    assert bench.synchronizer(torch.device("cpu"))() is None


def test_summary_names_the_best_peer_and_the_factor():
    from benchmarks.summary import summary_markdown

    entry = {"ratio": None, "note": "no such quantity"}
    rows = {row: {impl: dict(entry) for impl in bench.IMPLS} for row in bench.ROWS}
    rows["ggn_diag"]["fisherlab"] = {"ratio": 3.0}
    rows["ggn_diag"]["backpack"] = {"ratio": 4.0}
    rows["ggn_diag"]["torch.func"] = {"ratio": 6.0}
    rows["hvp"]["fisherlab"] = {"ratio": 2.0}
    meta = {"date": "D", "machine": "M", "device": "cpu", "threads": 1, "n": 8, "reps": 3}
    text = summary_markdown({"meta": meta, "models": {"mlp": {"rows": rows}}})
    assert "| exact GGN/Fisher diagonal | 3.00× vs 4.00× BackPACK: **0.75** |" in text
    assert "| Hessian-vector product | 2.00× (no peer) |" in text
    assert "| MC-Fisher diagonal | n/a |" in text
    assert "Measured D on M" in text
