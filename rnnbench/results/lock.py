"""The store's writer lock: an advisory ``flock`` on a sidecar ``<store>.lock`` file.

SQLite serialises transactions but does not stop two sweeps from interleaving their runs into
one file; this lock makes a second writer fail fast with a clear message. ``flock`` locks die
with their process, so a killed sweep never leaves a stale lock behind. ``fcntl`` is imported
on the write path only: reading a store (``results``, ``compare``, reports) needs no lock and
works where there is no ``fcntl`` (Windows).
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnbench.errors import StoreError, StoreLockedError


def lock_path(store: Path) -> Path:
    return Path(f"{store}.lock")


def acquire(store: Path) -> int:
    """Take the writer lock of ``store`` and return its file descriptor, or raise
    :class:`StoreLockedError` naming the holder's pid.

    Uses ``flock(LOCK_EX | LOCK_NB)``; the kernel drops the lock when the process dies. The
    lock file is never deleted (deleting it would let a third process lock a fresh inode while
    we still hold the old one). Our pid is written into it for the next contender's message.
    """
    try:
        import fcntl
    except ImportError:
        raise StoreError(
            f"store {store}: writing needs fcntl's flock (POSIX: Linux, macOS); this platform "
            "can read stores but not run sweeps into them"
        ) from None
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"store {store}: cannot create lock file {path} ({exc.strerror})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreLockedError(
            f"store {store} is being written by another rnnbench process (pid {holder}); "
            "wait for it or use another --store"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def release(fd: int) -> None:
    import fcntl  # acquire() has imported it

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
