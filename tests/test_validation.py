"""The input checks of fisherlab.validation."""

import pytest
import torch

from fisherlab.validation import check_finite


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_finite_finds_one_bad_entry_and_lets_large_finite_entries_pass(bad):
    check_finite(torch.full((4,), 3e38), "x")  # the sum overflows, every entry is finite
    t = torch.ones(1000, dtype=torch.float64)
    t[417] = bad
    with pytest.raises(ValueError, match="t contains 1 NaN or inf"):
        check_finite(t, "t")
