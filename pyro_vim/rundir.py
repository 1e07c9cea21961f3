"""A run directory belongs to one process at a time, and a full disk is phrased for the user.

:class:`RunLock` holds an exclusive ``flock`` on ``DIR/.lock`` for as long as the process (or the
lock object) lives.  The kernel drops the lock when the process dies, even by ``kill -9``, so a
lock left behind by a killed run never blocks a resume; a second live process is refused with a
:class:`RunDirBusy` error that names the directory and the holder's pid.

:func:`is_no_space` tells a full disk (or quota) from other write errors and
:func:`no_space_message` phrases it for the user.  Files are written with
:mod:`pyro_vim.files`.
"""
from __future__ import annotations

import errno
import os
import socket
from typing import Optional

try:
    import fcntl
except ImportError:          # pragma: no cover - not POSIX
    fcntl = None

LOCK_NAME = ".lock"

#: errno values that mean the disk (or the user's quota) is full.
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """Exclusive ownership of a run directory (created if needed).

    ``RunLock(path).acquire()`` or ``with RunLock(path):``.  Raises :class:`RunDirBusy` when a
    live process holds it.  Re-acquiring a lock this object already holds is a no-op.
    """

    def __init__(self, folder: str):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_holder(fd)
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirBusy(
                        f"the run directory {self.folder!r} is in use by another process "
                        f"({holder}); wait for it to finish or stop it, or choose another "
                        "directory") from None
                raise
        holder = f"pid {os.getpid()} on {socket.gethostname()}"
        if _read_holder(fd) != holder:          # (unchanged: leave the file untouched)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (holder + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def is_no_space(error: BaseException) -> bool:
    """True when ``error`` (or an error it was raised from) is a full disk or quota."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return True
        error = error.__cause__ or error.__context__
    return False


def no_space_message(what: str, folder: str, resume_hint: Optional[str] = None) -> str:
    hint = resume_hint or "free some space, then resume the run"
    return (f"could not write {what}: no space left on the device of {folder!r}. Nothing "
            f"written before was lost (the last complete checkpoint is intact); {hint}")

