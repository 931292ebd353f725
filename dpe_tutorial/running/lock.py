"""A lock on a results folder, so that two runs never write into one folder at once.

The lock is the operating system's own (``flock`` on a ``.lock`` file inside
the folder): the kernel drops it when the holding process ends, however it
ends (SIGKILL included), so there is never a stale lock to delete by hand.
The file also holds the holder's PID, host and start time, which is what a
second run reports when it is turned away; it is removed when the lock is
released. Network file systems may not honour ``flock``; run one process per
folder there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .results_folder import LOCK

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

# the lock file inside the folder (a query's output folder has one too)
LOCK_NAME = LOCK


class FolderInUse(ValueError):
    """Another live process holds the folder's lock."""


@contextmanager
def hold(folder) -> Iterator[dict]:
    """Hold ``folder``'s lock for the duration of the ``with`` block; raises FolderInUse at once.

    The folder must exist. The lock file is removed on release; one left by a
    killed process is simply taken over.
    """
    path = Path(folder) / LOCK_NAME
    handle = _locked_handle(path, folder)
    try:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        _rewrite(handle, json.dumps(holder))
        yield holder
    finally:
        try:
            path.unlink()  # while locked: whoever opened it meanwhile sees it gone, retries
        except OSError:  # e.g. Windows, where an open file cannot be removed
            _rewrite(handle, "")
        handle.close()  # releases the lock


def _locked_handle(path: Path, folder):
    """The lock file, open and locked by us; raises FolderInUse when another process has it."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        handle = os.fdopen(descriptor, "r+", encoding="utf-8")
        if not _try_lock(handle):
            handle.close()
            raise FolderInUse(
                f"results folder {folder} is in use by another run ({_holder(path)}); "
                "wait for it to finish or stop it, then rerun"
            )
        if _is_current(handle, path):
            return handle
        # we locked a file its holder removed as we opened it: lock the one there now
        handle.close()


def _is_current(handle, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _try_lock(handle) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError: another open file holds it
        return False
    return True


def _rewrite(handle, text: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(text)
    handle.flush()


def _holder(path: Path) -> str:
    """``PID 123 on host h since 2026-01-01T10:00:00+00:00``, or what can be said without it."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"PID {holder['pid']} on host {holder['host']} since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        # the holder has locked the file but not written it yet
        return "a process that has just started"
