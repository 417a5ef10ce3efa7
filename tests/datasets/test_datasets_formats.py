from __future__ import annotations

import io

import numpy as np
import pytest

from fisherlab.datasets.text_formats import read_svmlight, read_whitespace_table
from fisherlab.datasets.xlsx import read_first_sheet


def test_svmlight_dense_rows(tmp_path):
    path = tmp_path / "f"
    path.write_text("+1 1:0.5 4:2 \n\n-1 # only a label\n3 2:-1e-3\n")
    X, y = read_svmlight(path, 4)
    np.testing.assert_array_equal(X, [[0.5, 0, 0, 2], [0, 0, 0, 0], [0, -1e-3, 0, 0]])
    np.testing.assert_array_equal(y, [1, -1, 3])
    assert X.dtype == np.float64


@pytest.mark.parametrize(
    ("text", "message"), [("1 5:1\n", "outside 1..4"), ("1 2=1\n", "svmlight format")]
)
def test_svmlight_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "f"
    path.write_text("1 1:1\n" + text)
    with pytest.raises(ValueError, match=f":2: .*{message}"):
        read_svmlight(path, 4)


def test_whitespace_table_checks_column_count(tmp_path):
    path = tmp_path / "t"
    path.write_text("1  2 3 \n4 5\t6\n\n")
    np.testing.assert_array_equal(read_whitespace_table(path, 3), [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="expected 7 columns, found 3"):
        read_whitespace_table(path, 7)


def test_xlsx_reads_first_sheet_with_gaps_and_strings(fakes):
    workbook = fakes.xlsx([[["a", "b & c"], [1.5, None, -2.0], [], [None, 3.0]], [["second"]]])
    rows = read_first_sheet(io.BytesIO(workbook))
    assert rows == [["a", "b & c"], [1.5, None, -2.0], [], [None, 3.0]]
