"""The compiled-product benchmark: every row timed eager, compiled and by curvlinops."""

from __future__ import annotations

import pytest

from benchmarks import compiled_products, run


@pytest.mark.slow
def test_compiled_rows_time_every_implementation_and_agree():
    result = compiled_products.bench_compiled(["mlp"], 8, 1, lambda message: None)
    rows = result["mlp"]["rows"]
    assert set(rows) == set(run.PRODUCTS) and result["mlp"]["plain_ms"] > 0
    for row, cells in rows.items():
        for impl in compiled_products.IMPLS:
            assert cells[impl]["ratio"] is not None and cells[impl]["ratio"] > 0, (row, impl)
        assert cells["compile_s"] > 0
        assert cells["compiled_vs_eager"] < 1e-4  # float32
    table = compiled_products.markdown(result, 1)
    for row in run.PRODUCTS:
        assert table.count(f"| mlp | {run.ROWS[row]} |") == 1
