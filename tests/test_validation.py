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


def test_check_all_finite_names_the_first_bad_tensor_and_passes_large_finite_values():
    from fisherlab.validation import check_all_finite

    good = torch.ones(3, dtype=torch.float64)
    huge = torch.full((4,), 3e38)  # float32 sum overflows, the entries are finite
    check_all_finite({"a": good, "b": huge, "ids": torch.arange(3)})
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="b contains 1 NaN or inf"):
        check_all_finite({"a": good, "b": bad, "c": torch.tensor([float("inf")])})
