"""Progress bars appear on a terminal only."""

import io

import pytest

from fisherlab import progress as progress_module
from fisherlab.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "env", "total", "shown"),
    [
        (True, "1", 100, True),
        (False, "1", 100, False),
        (True, "0", 100, False),
        (True, "1", 3, False),
    ],
)
def test_a_bar_only_where_one_would_be_seen(monkeypatch, tty, env, total, shown):
    err = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(progress_module.sys, "stderr", err)
    monkeypatch.setenv("FISHERLAB_PROGRESS", env)
    assert list(progress(range(total), total, "loop", min_total=10)) == list(range(total))
    assert ("loop" in err.getvalue()) is shown
