"""Run the fast-engine benchmarks: ``python -m benchmarks.run [--quick] [--device D] [--out DIR]``.

Every number is a ratio to a plain forward+backward of the same batch in the same
process: the methods of one model are timed in interleaved repetitions (one call of each
per round, in the same order, after warm-up calls) and the ratio is median(method) /
median(plain). On a CUDA device every call is bracketed by ``torch.cuda.synchronize``, so
the host clock measures the finished kernels. Results go to ``DIR/ratios.json``,
``DIR/memory.json``, ``DIR/scaling.json`` (written atomically) and the table
``DIR/README.md``. BackPACK and curvlinops are optional: their columns say "n/a" when
missing or unsupported for a model.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import resource
import statistics as stats_lib
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

import fisherlab as fl
from benchmarks import compiled_products, ddp_overhead, dense_builds, models, monitor_overhead
from benchmarks.measure import relative_difference, time_interleaved
from benchmarks.models import MODELS, problem
from fisherlab.engine.hooks import FIRST_ORDER, Collector

ROWS = {
    "first_order": "first-order set (grad, 2nd moment, variance, L2 norms)",
    "per_sample": "per-sample gradients",
    "per_sample_reuse": "per-sample gradients, reused buffers",
    "mc_diag": "MC-Fisher diagonal",
    "ggn_diag": "exact GGN/Fisher diagonal",
    "kfac": "training step + KFAC (MC)",
    "ggn_vp": "GGN-vector product",
    "hvp": "Hessian-vector product",
    "efvp": "EF-vector product",
}
PRODUCTS = {"ggn_vp": "ggn", "hvp": "hessian", "efvp": "empirical_fisher"}
IMPLS = ("fisherlab", "backpack", "curvlinops", "torch.func")
OURS = {
    "first_order": FIRST_ORDER,
    "per_sample": ("per_sample_gradients",),
    "per_sample_reuse": ("per_sample_gradients",),
    "mc_diag": ("fisher_mc_diag",),
    "ggn_diag": ("ggn_diag",),
    "kfac": ("kfac",),
}
# the rows whose result is the same as another row's: their peers are that row's peers
SAME_RESULT = {"per_sample_reuse": "per_sample"}
HOW_TIMED = {
    "fisherlab": "statistics inside the training step's own backward (gradient included); "
    'products: `fl.Curvature(...).ggn/hessian/empirical_fisher(form="operator")` built '
    "once, only `op @ v` timed",
    "backpack": "extensions inside the training step's own backward (gradient included); "
    "the ResNet through its graph converter; the transformer block has LayerNorm, for which "
    "BackPACK has no extension, and attention, which its second-order extensions cannot follow",
    "curvlinops": "KFAC: an ordinary forward+backward for the gradient plus "
    "`KFACLinearOperator` (its own forward and sampled backward); products: "
    "`GGNLinearOperator`, `HessianLinearOperator`, `EFLinearOperator` built once, only "
    "`op @ v` timed",
    "torch.func": "`vmap` over samples of `grad` (per-sample gradients, + squares for the "
    "first-order set) or of `vjp` with the gradient's and the curvature's output columns "
    "(MC: one sampled label; exact: the C columns of the softmax Hessian's square root)",
}
BACKPACK_FIELDS = {
    "first_order": ("sum_grad_squared", "variance", "batch_l2"),
    "per_sample": ("grad_batch",),
    "mc_diag": ("diag_ggn_mc",),
    "ggn_diag": ("diag_ggn_exact",),
    "kfac": ("kfac",),
}
DEFAULT_OUT = Path(__file__).parent / "results"
WRONG = 1e-8  # a float64 relative difference above this is an error, not round-off

Method = Callable[[], object]


class NoSuchQuantity(NotImplementedError):
    """The library has no method for the row at all (as opposed to not supporting a model)."""


# -- the methods ------------------------------------------------------------------------------
def plain(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Method:
    """A training step's forward and backward, the unit of every ratio."""
    loss_fn = nn.CrossEntropyLoss()

    def run() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(X), y).backward()

    return run


def fisherlab_method(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    """fisherlab: a statistics row through the hooks, or a product row through the operator."""
    if row in PRODUCTS:
        return _fisherlab_product(model, X, y, row)
    loss_fn = nn.CrossEntropyLoss()
    collector = Collector(
        model,
        fl.likelihoods.Categorical(),
        OURS[row],
        generator=torch.Generator(device=X.device).manual_seed(0),
        reuse_buffers=row == "per_sample_reuse",
    )

    def run() -> dict:
        model.zero_grad(set_to_none=True)
        with collector:
            loss_fn(model(X), y).backward()
        return {stat: collector[stat] for stat in OURS[row]}  # assembled: scaling, variance

    return run


def _product_vector(model: nn.Module) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    dim = sum(p.numel() for p in params)
    v = torch.randn(dim, generator=torch.Generator().manual_seed(1))
    return v.to(device=params[0].device, dtype=params[0].dtype)


def _fisherlab_product(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    curvature = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    op = getattr(curvature, PRODUCTS[row])(form="operator")
    v = _product_vector(model)
    return lambda: op @ v


def backpack_method(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str, check: bool = True
) -> Method:
    """BackPACK's extensions in the training step's backward; ``check`` runs it once and
    refuses a model where some parameter did not receive the extension's result."""
    if row not in BACKPACK_FIELDS:
        raise NoSuchQuantity("no such BackPACK extension")
    import backpack
    from backpack import extensions as ext

    try:
        bp_model = backpack.extend(copy.deepcopy(model), use_converter=_has_residual(model))
    except Exception as error:  # noqa: BLE001 - any failure means "unsupported"
        raise NotImplementedError(f"backpack.extend failed: {error}") from None
    loss_fn = backpack.extend(nn.CrossEntropyLoss())
    extensions = {
        "first_order": lambda: (ext.SumGradSquared(), ext.Variance(), ext.BatchL2Grad()),
        "per_sample": lambda: (ext.BatchGrad(),),
        "mc_diag": lambda: (ext.DiagGGNMC(),),
        "ggn_diag": lambda: (ext.DiagGGNExact(),),
        "kfac": lambda: (ext.KFAC(),),
    }[row]()

    def run() -> None:
        bp_model.zero_grad(set_to_none=True)
        with backpack.backpack(*extensions):
            loss_fn(bp_model(X), y).backward()

    if check:
        run()  # raises here if BackPACK refuses a layer
        missing = sorted(
            {
                type(module).__name__
                for module in bp_model.modules()
                for p in module.parameters(recurse=False)
                if not all(hasattr(p, field) for field in BACKPACK_FIELDS[row])
            }
        )
        if missing:
            raise NotImplementedError(f"no extension for {', '.join(missing)}")
    return run


def curvlinops_method(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    """curvlinops: a training step plus its KFAC, or a product of its linear operators."""
    params = [p for p in model.parameters() if p.requires_grad]
    if row in PRODUCTS:
        import curvlinops

        cls = {
            "ggn_vp": curvlinops.GGNLinearOperator,
            "hvp": curvlinops.HessianLinearOperator,
            "efvp": curvlinops.EFLinearOperator,
        }[row]
        op = cls(model, nn.CrossEntropyLoss(), params, [(X, y)], check_deterministic=False)
        v = _product_vector(model)
        return lambda: op @ v
    if row != "kfac":
        raise NoSuchQuantity("curvlinops has no such statistic")
    from curvlinops import KFACLinearOperator

    kfac_params = [
        p
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
        for p in m.parameters(recurse=False)
    ]
    step = plain(model, X, y)

    def run() -> None:
        step()  # the gradient, which KFACLinearOperator does not give
        op = KFACLinearOperator(
            model,
            nn.CrossEntropyLoss(),
            kfac_params,
            [(X, y)],
            check_deterministic=False,
            fisher_type="mc",
            mc_samples=1,
        )
        op.compute_kronecker_factors()

    return run


def func_method(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    """torch.func: ``vmap`` over samples of ``grad`` or of ``vjp`` with output columns."""
    if row not in ("first_order", "per_sample", "mc_diag", "ggn_diag"):
        raise NoSuchQuantity("torch.func rows: per-sample gradients, GGN diagonals")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    buffers = dict(model.named_buffers())
    if row in ("mc_diag", "ggn_diag"):
        return _func_diag(model, X, y, row, names, buffers)
    loss_fn = nn.CrossEntropyLoss()

    def sample_loss(params: dict, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**params, **buffers}, (x.unsqueeze(0),))
        return loss_fn(out, t.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))

    def run() -> dict:
        params = {n: p.detach() for n, p in model.named_parameters() if n in names}
        G = per_sample(params, X, y)
        if row == "first_order":
            for g in G.values():
                mean = g.mean(0)
                second = g.square().mean(0)
                _ = second - mean.square()
                _ = g.flatten(1).square().sum(1)
        return G

    return run


def _func_diag(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str, names: list, buffers: dict
) -> Method:
    r"""Gradient and GGN diagonal, :math:`\frac1N\sum_n\sum_k (J_n^\top s_{n,k})^{\odot 2}`.

    Per sample one ``vjp`` of the logits :math:`f_n`; its pullback takes the gradient's
    column :math:`p_n - e_{y_n}` and the curvature columns: for the exact GGN the columns
    of :math:`S_n = \mathrm{diag}(\sqrt{p_n}) - p_n\sqrt{p_n}^\top`
    (:math:`S_n S_n^\top = \mathrm{diag}(p_n) - p_n p_n^\top`, the softmax cross-entropy
    Hessian), for the Monte-Carlo Fisher one column :math:`p_n - e_{\hat y_n}` with
    :math:`\hat y_n \sim p_n` drawn by inverting the cumulative distribution at a uniform
    :math:`u_n`.
    """
    n = X.shape[0]
    generator = torch.Generator(device=X.device).manual_seed(0)

    def columns(params: dict, x: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> tuple:
        def logits(p: dict) -> torch.Tensor:
            return functional_call(model, {**p, **buffers}, (x.unsqueeze(0),)).squeeze(0)

        out, pullback = vjp(logits, params)
        p = out.detach().softmax(-1)
        classes = p.shape[-1]
        onehot = nn.functional.one_hot(t, classes).to(p.dtype)
        if row == "ggn_diag":
            root = p.sqrt()
            curvature = torch.diag(root) - root.unsqueeze(1) * p.unsqueeze(0)  # rows: S[:, k]
        else:
            sampled = (p.cumsum(-1) < u).sum().clamp(max=classes - 1)
            curvature = (p - nn.functional.one_hot(sampled, classes).to(p.dtype)).unsqueeze(0)
        cotangents = torch.cat([(p - onehot).unsqueeze(0), curvature])
        (pulled,) = vmap(pullback)(cotangents)
        return (
            {k: g[0] for k, g in pulled.items()},
            {k: g[1:].square().sum(0) for k, g in pulled.items()},
        )

    per_sample = vmap(columns, in_dims=(None, 0, 0, 0))

    def run() -> dict:
        params = {k: p.detach() for k, p in model.named_parameters() if k in names}
        dtype = next(iter(params.values())).dtype
        u = torch.rand(n, generator=generator, device=X.device, dtype=dtype)
        gradients, squares = per_sample(params, X, y, u)
        _ = {k: g.sum(0) / n for k, g in gradients.items()}
        return {k: s.sum(0) / n for k, s in squares.items()}

    return run


def _has_residual(model: nn.Module) -> bool:
    return any(type(m).__name__ == "Block" for m in model.modules())


def build_method(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str, impl: str, check: bool = True
):
    """The method of ``impl`` for ``row``; ``NotImplementedError`` where it has none."""
    if impl == "fisherlab":
        return fisherlab_method(model, X, y, row)
    if impl == "backpack":
        return backpack_method(model, X, y, row, check)
    if impl == "curvlinops":
        return curvlinops_method(model, X, y, row)
    return func_method(model, X, y, row)


# -- devices and timing -----------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """The ``--device`` argument as a device; ``ValueError`` if unknown or not present."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device: unknown device {name!r} (use cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: only cpu and cuda are supported")
    return device


def limit_blas_threads(threads: int) -> None:
    """Hold NumPy's and SciPy's BLAS (``syrk`` of the Kronecker factors) to ``threads`` too,
    so that no method runs on more threads than ``torch.set_num_threads`` gives the others."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl, OPENBLAS_NUM_THREADS is the only limit
        return
    import scipy.linalg.blas  # noqa: F401 - load SciPy's BLAS so that the limit reaches it

    threadpool_limits(limits=threads, user_api="blas")


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued kernels (CUDA), a no-op on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def on_device(name: str, n: int, device: torch.device, **kwargs):
    """The benchmark problem ``name`` with ``n`` samples on ``device``."""
    model, X, y = problem(name, n, **kwargs)
    return model.to(device), X.to(device), y.to(device)


def bench_model(
    name: str, n: int, reps: int, log: Callable[[str], None], device: torch.device, warmup: int = 2
) -> dict:
    """Ratios and milliseconds of every row and implementation on one model."""
    model, X, y = on_device(name, n, device)
    methods: dict[str, Method] = {"plain": plain(model, X, y)}
    notes: dict[str, str] = {}
    for row in ROWS:
        for impl in IMPLS:
            key = f"{row}/{impl}"
            try:
                methods[key] = build_method(model, X, y, row, impl)
            except ImportError:
                notes[key] = "not installed"
            except NoSuchQuantity:
                notes[key] = NO_SUCH
            except NotImplementedError as error:
                notes[key] = _short_note(error)
            except Exception as error:  # noqa: BLE001 - a peer failing on a model is a note
                notes[key] = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    log(f"  {name}: timing {len(methods)} methods x {reps} reps")
    medians = time_interleaved(methods, reps, warmup, synchronizer(device))
    base = medians["plain"]
    table = {
        row: {
            impl: (
                {"ratio": medians[f"{row}/{impl}"] / base, "ms": 1e3 * medians[f"{row}/{impl}"]}
                if f"{row}/{impl}" in medians
                else {"ratio": None, "note": notes.get(f"{row}/{impl}", "n/a")}
            )
            for impl in IMPLS
        }
        for row in ROWS
    }
    return {"n": n, "plain_ms": 1e3 * base, "rows": table, "checks": product_checks(name, n)}


NO_SUCH = "no such quantity"


def _short_note(error: Exception) -> str:
    """The reason a peer does not support a model, in a few words."""
    text = str(error).splitlines()[0]
    match = re.search(r"extension for Module <class '([\w.]+)'>", text)
    return f"no extension for {match.group(1).rsplit('.', 1)[-1]}" if match else text[:80]


def product_checks(name: str, n: int) -> dict:
    """Relative differences of the product rows (float64, CPU): fisherlab vs curvlinops, and
    for the Hessian both against autograd's double backward."""
    model, X, y = problem(name, min(n, 16))
    model, X = model.double(), X.double() if X.is_floating_point() else X
    out: dict = {}
    for row in PRODUCTS:
        try:
            ours = fisherlab_method(model, X, y, row)()
            theirs = curvlinops_method(model, X, y, row)()
        except (ImportError, NotImplementedError):
            continue
        out[row] = {"fisherlab_vs_curvlinops": relative_difference(ours, theirs)}
        if row == "hvp":
            reference = _autograd_hvp(model, X, y, _product_vector(model))
            out[row]["fisherlab_vs_autograd"] = relative_difference(ours, reference)
            out[row]["curvlinops_vs_autograd"] = relative_difference(theirs, reference)
    return out


def _autograd_hvp(model: nn.Module, X: torch.Tensor, y: torch.Tensor, v: torch.Tensor):
    params = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(model(X), y)
    gradient = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([g.flatten() for g in gradient])
    return torch.cat([h.flatten() for h in torch.autograd.grad(flat @ v, params)])


# -- memory -----------------------------------------------------------------------------------
def memory_probe(name: str, n: int, row: str, impl: str, device: torch.device) -> float:
    """Peak memory above the set-up state (MiB) over three calls of a method: resident
    memory on the CPU, allocated device memory on CUDA.

    The set-up state includes the model, the data, the built method and the modules torch
    imports lazily on a first backward; no call of the method runs before the measurement,
    for any library.
    """
    # torch.autograd.grad with output gradients imports torch's symbolic-shape module (and
    # sympy, ≈ 50 MB) on its first call: a one-time module import, not the method's memory
    import torch.fx.experimental.symbolic_shapes  # noqa: F401

    model, X, y = on_device(name, n, device)
    if row == "plain":
        method = plain(model, X, y)
    else:  # no call before the measurement, for any library
        method = build_method(model, X, y, row, impl, check=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(3):
            method()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = _resident_kib()
    _reset_peak()
    for _ in range(3):
        method()
    return (_peak_kib() - before) / 1024.0


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _resident_kib() -> int:
    return _status_kib("VmRSS")


def _peak_kib() -> int:
    return _status_kib("VmHWM")


def _reset_peak() -> None:
    """Reset the peak resident set size (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def bench_memory(
    ratios: dict,
    n: int,
    rows: tuple[str, ...],
    impls: tuple[str, ...],
    threads: int,
    device: torch.device,
    log: Callable[[str], None],
) -> dict:
    """One fresh process per timed cell of ``ratios`` in ``rows`` × ``impls`` (and per
    plain step)."""
    out: dict = {}
    for name, result in ratios.items():
        out[name] = {}
        log(f"  {name}: memory probes")
        cells = [("plain", "plain")] + [
            (row, impl)
            for row in rows
            for impl in impls
            if result["rows"][row][impl]["ratio"] is not None
        ]
        for row, impl in cells:
            cmd = [sys.executable, "-m", "benchmarks.run", "--memory-probe", name, str(n)]
            cmd += [row, impl, "--threads", str(threads), "--device", str(device)]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, cwd=Path(__file__).parent.parent
            )
            key = "plain" if row == "plain" else f"{row}/{impl}"
            if proc.returncode == 0 and proc.stdout.strip():
                out[name][key] = float(proc.stdout.strip().splitlines()[-1])
            else:
                out[name][key] = None
    return out


# -- scaling ----------------------------------------------------------------------------------
def bench_scaling(sizes: list[int], widths: list[int], reps: int, device: torch.device, log):
    """fisherlab's first-order set and exact GGN diagonal on the MLP over N and width."""
    out: dict = {"batch": [], "width": []}
    for axis, values in (("batch", sizes), ("width", widths)):
        for value in values:
            n, width = (value, 256) if axis == "batch" else (128, value)
            model, X, y = on_device("mlp", n, device, width=width)
            methods = {
                "plain": plain(model, X, y),
                "first_order": fisherlab_method(model, X, y, "first_order"),
                "ggn_diag": fisherlab_method(model, X, y, "ggn_diag"),
            }
            medians = time_interleaved(methods, reps, warmup=1, sync=synchronizer(device))
            out[axis].append({axis: value, **{k: 1e3 * v for k, v in medians.items()}})
            log(
                f"  scaling {axis}={value}: "
                + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in medians.items())
            )
    return out


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x` (1 = linear growth)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = stats_lib.fmean(lx), stats_lib.fmean(ly)
    covariance = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    return covariance / sum((a - mx) ** 2 for a in lx)


# -- output -----------------------------------------------------------------------------------
def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def _cell(entry: dict) -> str:
    return f"{entry['ratio']:.2f}×" if entry.get("ratio") is not None else "n/a"


def best_peer(rows: dict, row: str) -> tuple[str, float] | None:
    """The fastest peer of ``row`` (for a row with another row's result, of that row)."""
    entries = rows[SAME_RESULT.get(row, row)]
    peers = [(i, e["ratio"]) for i, e in entries.items() if i != "fisherlab" and e["ratio"]]
    return min(peers, key=lambda p: p[1]) if peers else None


def markdown(meta: dict, ratios: dict, memory: dict, scaling: dict) -> str:
    """The results table: per model every row, every peer, the best peer and the verdict."""
    lines = [
        "# Fast-engine benchmarks",
        "",
        f"Measured {meta['date']} on {meta['machine']}; device {meta['device']}; mode "
        f"{meta['mode']}; torch {meta['torch']}; {meta['threads']} thread(s) "
        f"(`torch.set_num_threads`); {meta['reps']} interleaved repetitions after warm-up, "
        f"median{'; CUDA-synchronised timing' if meta['device'].startswith('cuda') else ''}. "
        f"Float32, cross-entropy, N = {meta['n']}. 1-minute load average at the start: "
        f"{meta.get('load', 'n/a')} (other jobs on the machine make the numbers noisy).",
        "",
        "Time of each method divided by the time of a plain forward+backward of the same "
        "batch, measured in the same process (lower is better). *ours / best* is fisherlab's "
        "time over the best peer's (below 1: ahead). n/a: the library has no such quantity "
        "or does not support the model (reason below each table). How each library is timed:",
        "",
        *[f"- {impl}: {how}." for impl, how in HOW_TIMED.items()],
        "- Reused buffers give the per-sample gradients of the row above; their peers are "
        "that row's.",
        "",
    ]
    summary: list[str] = []
    for name, result in ratios.items():
        lines += [
            f"## {name} (plain forward+backward: {result['plain_ms']:.2f} ms)",
            "",
            "| quantity | " + " | ".join(IMPLS) + " | best peer | ours / best | ahead |",
            "|---|" + "---|" * (len(IMPLS) + 3),
        ]
        for row, label in ROWS.items():
            entries = result["rows"][row]
            cells = " | ".join(_cell(entries[i]) for i in IMPLS)
            best = best_peer(result["rows"], row)
            ours = entries["fisherlab"]["ratio"]
            if best is None or ours is None:
                lines.append(f"| {label} | {cells} | – | – | – |")
                summary.append(f"{name}: {label}: no peer")
                continue
            factor = ours / best[1]
            ahead = "yes" if factor <= 1.0 else "no"
            wrong = result.get("checks", {}).get(row, {}).get(f"{best[0]}_vs_autograd", 0.0)
            mark = " ‡" if wrong > WRONG else ""
            lines.append(
                f"| {label} | {cells} | {best[0]} {best[1]:.2f}×{mark} | {factor:.2f} | {ahead} |"
            )
            if factor > 1.0:
                summary.append(f"{name}: {label}: {factor:.2f}× the time of {best[0]}")
        noted = sorted(
            {
                f"{impl} ({row}): {e['note']}"
                for row in ROWS
                for impl, e in result["rows"][row].items()
                if e.get("ratio") is None and e.get("note") != NO_SUCH
            }
        )
        if noted:
            lines += ["", "n/a: " + "; ".join(noted)]
        checks = result.get("checks", {})
        wrong = [
            f"‡ {impl}'s {ROWS[row]} differs from autograd's double backward by {error:.1e} "
            "(relative, float64) on this model"
            for row, c in checks.items()
            for impl in ("curvlinops",)
            if (error := c.get(f"{impl}_vs_autograd", 0.0)) > WRONG
        ]
        lines += ["", *wrong] if wrong else []
        if checks:
            lines += [
                "",
                "Product check (float64, N ≤ 16, relative difference): "
                + "; ".join(
                    f"{row}: " + ", ".join(f"{k.replace('_', ' ')} {v:.1e}" for k, v in c.items())
                    for row, c in checks.items()
                ),
            ]
        lines.append("")
    lines += ["## Rows behind the best peer", ""]
    lines += [f"- {s}" for s in summary] or ["- none"]
    lines.append("")
    if memory:
        lines += [
            "## Memory",
            "",
            "Peak memory above the set-up state over three calls (MiB), one fresh process per "
            "cell: resident memory on the CPU, allocated device memory on CUDA.",
            "",
        ]
        for name, cells in memory.items():
            impls = sorted({k.split("/")[1] for k in cells if "/" in k}, key=IMPLS.index)
            lines += [
                f"### {name} (plain: {_mib(cells.get('plain'))})",
                "",
                "| quantity | " + " | ".join(impls) + " |",
                "|---|" + "---|" * len(impls),
            ]
            for row, label in ROWS.items():
                lines.append(
                    f"| {label} | "
                    + " | ".join(_mib(cells.get(f"{row}/{i}")) for i in impls)
                    + " |"
                )
            lines.append("")
    for axis, label in (("batch", "N (width 256)"), ("width", "width (N = 128)")):
        entries = scaling[axis]
        # time is linear in N, and in the number of parameters D (quadratic in the width)
        size = "N" if axis == "batch" else "D"
        lines += [
            f"## Scaling with {label}, MLP, fisherlab",
            "",
            f"| {axis} | {size} | plain ms | first-order ms | ratio | exact GGN diag ms | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        sizes = [e[axis] if axis == "batch" else mlp_parameters(e[axis]) for e in entries]
        for entry, x in zip(entries, sizes, strict=True):
            lines.append(
                f"| {entry[axis]} | {x} | {entry['plain']:.2f} | {entry['first_order']:.2f} | "
                f"{entry['first_order'] / entry['plain']:.2f}× | {entry['ggn_diag']:.2f} | "
                f"{entry['ggn_diag'] / entry['plain']:.2f}× |"
            )
        half = len(entries) // 2
        if len(entries) - half >= 2:
            slopes = {
                k: loglog_slope(sizes[half:], [e[k] for e in entries[half:]])
                for k in ("plain", "first_order", "ggn_diag")
            }
            lines += [
                "",
                f"Log-log slope of time against {size} over {axis} ≥ {entries[half][axis]} "
                "(1 = linear): " + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()) + ".",
            ]
        lines.append("")
    return "\n".join(lines)


def mlp_parameters(width: int) -> int:
    """The number of parameters of the benchmark MLP of hidden ``width``."""
    return sum(p.numel() for p in models.mlp(width).parameters())


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def machine_name(device: torch.device) -> str:
    """The processor (and GPU) the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = f"{cpu}, {os.cpu_count()} cores"
    if device.type == "cuda":
        name += f", {torch.cuda.get_device_name(device)}"
    return name


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions, small N")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--memory-probe", nargs=4, metavar=("MODEL", "N", "ROW", "IMPL"))
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.reps is not None and args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    torch.set_num_threads(args.threads)
    limit_blas_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # peers' hook warnings
    if args.memory_probe:
        name, n, row, impl = args.memory_probe
        print(memory_probe(name, int(n), row, impl, device))
        return 0

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    quick = args.quick
    n = 32 if quick else 128
    reps = args.reps or (3 if quick else 15)
    meta = {
        "mode": "quick" if quick else "full",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device),
        "torch": torch.__version__,
        "threads": args.threads,
        "reps": reps,
        "n": n,
        "machine": machine_name(device),
        "load": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    log(f"benchmarks ({meta['mode']}, {device}, {args.threads} thread(s))")
    warmup = 1 if quick else 2
    ratios = {name: bench_model(name, n, reps, log, device, warmup) for name in args.models}
    write_json(args.out / "ratios.json", {"meta": meta, "models": ratios})
    memory_ratios = {k: v for k, v in ratios.items() if not quick or k == "mlp"}
    memory_rows = ("first_order", "ggn_diag") if quick else tuple(ROWS)
    memory_impls = ("fisherlab",) if quick else IMPLS
    memory = bench_memory(memory_ratios, n, memory_rows, memory_impls, args.threads, device, log)
    write_json(args.out / "memory.json", {"meta": meta, "models": memory})
    sizes = [16, 64] if quick else [16, 32, 64, 128, 256, 512, 1024]
    widths = [64, 128] if quick else [64, 128, 256, 512, 1024]
    scaling = bench_scaling(sizes, widths, 2 if quick else 10, device, log)
    write_json(args.out / "scaling.json", {"meta": meta, **scaling})
    text = markdown(meta, ratios, memory, scaling)
    if device.type == "cpu":
        monitor = monitor_overhead.bench_monitor(n, reps, log)
        write_json(args.out / "monitor.json", {"meta": meta, **monitor})
        text += "\n\n" + monitor_overhead.markdown(monitor)
    dense = dense_builds.bench_dense(n, min(reps, 5), log, device)
    write_json(args.out / "dense.json", {"meta": meta, **dense})
    text += "\n\n" + dense_builds.markdown(dense)
    if device.type == "cpu" and not quick:  # spawns 2 gloo ranks
        ddp = ddp_overhead.bench_ddp(64, reps, 2, log)
        write_json(args.out / "ddp.json", {"meta": meta, **ddp})
        text += "\n\n" + ddp_overhead.markdown(ddp)
    if not quick:  # compiling takes seconds to tens of seconds per product
        compiled = compiled_products.bench_compiled(list(args.models), n, reps, log, device)
        write_json(args.out / "compiled.json", {"meta": meta, "models": compiled})
        text += "\n\n" + compiled_products.markdown(compiled, reps)
    readme = args.out / "README.md"
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, readme)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
