"""The dense-build benchmark rows: every implementation timed, the same matrices in float64."""

from __future__ import annotations

from benchmarks import dense_builds


def test_dense_rows_time_every_implementation_and_agree():
    result = dense_builds.bench_dense(8, 1, lambda message: None)
    assert result["num_params"] == 1051 and result["plain_ms"] > 0
    for row in dense_builds.ROWS:
        for impl in dense_builds.IMPLS:
            entry = result["rows"][row][impl]
            assert entry["ratio"] is not None and entry["ratio"] > 0, (row, impl)
    checks = result["checks"]
    assert set(checks["hessian"]) == {
        "torch.func_vs_fisherlab",
        "curvlinops_vs_fisherlab",
        "fisherlab_vs_autograd",
    }
    assert all(value < 1e-10 for c in checks.values() for value in c.values())
    table = dense_builds.markdown(result)
    for label in dense_builds.ROWS.values():
        assert table.count(f"| {label} |") == 1
