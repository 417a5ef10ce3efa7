"""An exclusive lock on a run directory, so that two runs never write into the same one.

The lock is a file ``DIR/NAME.lock`` beside the run directory (so that deleting the run
directory with ``--fresh`` does not delete the lock), created with ``O_EXCL`` and holding
the owner's host and process id. A lock whose owner process no longer exists on this
host is stale and is taken over with a warning.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path
from types import TracebackType

__all__ = ["RunDirectoryLock", "RunLockedError"]


class RunLockedError(RuntimeError):
    """Another live process is writing into the run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunDirectoryLock:
    """Hold ``run_dir``'s lock for the duration of a ``with`` block.

    Parameters
    ----------
    run_dir : Path
        The run directory ``DIR/NAME``; the lock file is ``DIR/NAME.lock``.

    Raises
    ------
    RunLockedError
        On entry, if a live process on this host (or any process on another host) holds
        the lock.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir.parent / f"{self.run_dir.name}.lock"
        self._owner = {"host": socket.gethostname(), "pid": os.getpid()}

    def _holder(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
            return holder if isinstance(holder, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def _try_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._owner, f)
        return True

    def __enter__(self) -> RunDirectoryLock:
        if self._try_create():
            return self
        holder = self._holder()
        if holder is None and self._try_create():  # released in between
            return self
        holder = holder or {}
        pid, host = holder.get("pid"), holder.get("host")
        same_host = host == self._owner["host"]
        if isinstance(pid, int) and same_host and not _alive(pid):
            warnings.warn(
                f"taking over the stale lock {self.path} of process {pid}, which no longer exists",
                RuntimeWarning,
                stacklevel=2,
            )
            self.path.unlink(missing_ok=True)
            if self._try_create():
                return self
        who = f"process {pid} on {host}" if pid is not None else "another process"
        raise RunLockedError(
            f"{self.run_dir} is being written by {who} (lock file {self.path}); "
            "wait for that run to finish, or choose another --out directory"
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._holder() == self._owner:
            self.path.unlink(missing_ok=True)
