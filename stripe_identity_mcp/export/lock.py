"""One export per file: an OS advisory lock on `<out>.lock`, held for the export's whole life.

Why flock: the kernel releases it when the holder's file descriptor closes — including when the
process is killed — so a crashed or SIGKILLed export never blocks the next one, and no staleness
heuristic (pid checks, timeouts) is needed. Two `open()` calls get two open file descriptions, and
flock conflicts between those even inside one process, so two tool calls in the same server exclude
each other too.

The lock covers the output and its checkpoint (both are derived from the same target name), and is
taken before either is read, truncated or created: a refused export has touched nothing.

The lock file holds the holder's pid, start time and target so a refusal can name the running export.
Its content is written by whoever can write the export directory, so it is parsed as data (an int pid,
a timestamp) and never echoed verbatim. The file is opened with O_NOFOLLOW: a planted symlink is
refused, never followed. It is removed on release; because a waiter may have opened the file just
before that, a lock is only considered held once the locked descriptor is still the file at the path.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from stripe_identity_mcp.export.paths import lock_path

_ATTEMPTS = 5  # path replaced under us (holder released between our open and flock): retry, bounded


class ExportBusy(Exception):
    """Another export holds the target; the message names it."""


class ExportLock:
    """`with ExportLock(out):` — exclusive, non-blocking; raises ExportBusy or OSError."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = lock_path(self.out)
        self.fd: int | None = None

    def __enter__(self) -> ExportLock:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        for _ in range(_ATTEMPTS):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(fd)
                os.close(fd)
                raise ExportBusy(
                    f"export to {self.out.name} is already running ({holder}); wait for it or cancel it"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            if self._still_at_path(fd):
                self.fd = fd
                self._write_info()
                return
            os.close(fd)  # the previous holder removed that file after we opened it: lock the new one
        raise ExportBusy(f"export to {self.out.name}: its lock file keeps changing; another export is starting")

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            # Unlink while still holding the lock: a waiter that opened this inode re-checks the path.
            if self._still_at_path(fd):
                os.unlink(self.path)
        except OSError:
            pass  # a leftover lock file is harmless: it is unlocked once closed
        finally:
            os.close(fd)

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OSError(exc.errno, f"{self.path.name} is a symbolic link; refusing to follow it") from None
            raise

    def _still_at_path(self, fd: int) -> bool:
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _write_info(self) -> None:
        assert self.fd is not None
        info = {
            "pid": os.getpid(),
            "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "target": str(self.out),
        }
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(info).encode(), 0)


def _describe(fd: int) -> str:
    """'pid 1234, started 2026-12-01T22:41:03Z' from the holder's lock file, validated as data."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw)
        pid = info["pid"]
        started = info["started"]
        if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(started, str):
            raise ValueError
        # Only a well-formed timestamp is shown (the file is writable by others).
        stamp = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OSError, ValueError, KeyError, TypeError):
        return "its details are not written yet"
    ago = max(0, int(time.time() - datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()))
    return f"pid {pid}, started {stamp}, {ago}s ago"
