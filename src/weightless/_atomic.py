"""Atomic file replacement that leaves no litter, even when the writer is killed.

:func:`atomic_target` yields a temporary path ``.NAME.<12 hex>.tmp`` in the target's folder,
created exclusively and held under an exclusive ``flock`` for as long as it is written. On
success the file is fsync'ed and renamed over the target (``os.replace``), then the folder is
fsync'ed; on an exception it is removed. A writer killed outright (SIGKILL, power loss) cannot
remove its temporary file, so every call first removes the temporary files of the same target
that nobody holds a lock on: their writer is gone (the kernel drops a dead process's locks).
On systems without ``fcntl.flock`` (Windows) stale files are not removed.

What may be replaced: nothing that exists and is not a regular file. A target that is a
device, a FIFO, a socket or a directory is refused with :class:`~weightless.errors.InputError`
before anything is written (an atomic rename would replace ``/dev/full`` or a FIFO with a
regular file). A symlink is written *through*: the file it points to (resolved with
``os.path.realpath``, which must be a regular file or not exist yet) is replaced atomically,
and the link itself is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from typing import Iterator

try:  # pragma: no cover - depends on the OS
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_target", "write_atomic", "resolve_target", "temp_name_pattern", "remove_stale_temps"]


def temp_name_pattern(base: str) -> re.Pattern[str]:
    """The names of temporary files for a target called ``base``."""
    return re.compile(r"\." + re.escape(base) + r"\.[0-9a-f]{12}\.tmp")


def _lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False if another process holds it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def remove_stale_temps(folder: str, base: str) -> int:
    """Remove temporary files of target ``base`` in ``folder`` whose writer is gone; return
    how many were removed (0 where locks are not available)."""
    if fcntl is None:  # pragma: no cover
        return 0
    pattern = temp_name_pattern(base)
    removed = 0
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd) and os.path.samestat(os.fstat(fd), os.lstat(path)):
                os.unlink(path)  # locked by us: its writer died before renaming it
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _fsync_dir(folder: str) -> None:
    """Make the rename durable where the OS allows opening a directory (best effort)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _create_locked(folder: str, base: str) -> tuple[str, int]:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(64):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, like open()
        except FileExistsError:
            continue
        # another saver's cleanup may have removed the file between open and lock: check
        if _lock(fd) and os.path.samestat(os.fstat(fd), os.stat(tmp)):
            return tmp, fd
        os.close(fd)  # pragma: no cover - lost a race with a cleanup; try a new name
    raise FileExistsError(f"could not create a temporary file in {folder}")  # pragma: no cover


def resolve_target(path: str) -> str:
    """The path to replace for a write to ``path``: ``path`` itself, or the file a symlink
    points to (links followed to the end).

    Raises:
        InputError: the target exists and is not a regular file (device, FIFO, socket,
            directory), or is a symlink loop.
    """
    from .errors import InputError

    real = os.path.realpath(path) if os.path.islink(path) else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as exc:  # e.g. a symlink loop (ELOOP)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "not a regular file")
        where = f"{path} (-> {real})" if real != path else path
        raise InputError(f"refusing to write {where}: it is {kind}, not a regular file; choose a file path")
    return real


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[tuple[str, int]]:
    """Yield ``(temporary path, open fd)``; write the file there (through the fd or by path).

    When the block exits normally the temporary file is fsync'ed and renamed over ``path``;
    on an exception it is removed and ``path`` is untouched.

    Raises:
        InputError: ``path`` exists and is not a regular file (see :func:`resolve_target`).
        OSError: the folder does not exist or is not writable, the disk is full...
    """
    path = resolve_target(os.fspath(path))
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    remove_stale_temps(folder, base)
    tmp, fd = _create_locked(folder, base)
    try:
        yield tmp, fd
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock
    _fsync_dir(folder)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace ``path`` with ``data`` (str: UTF-8) through :func:`atomic_target`, creating its
    folder first.

    Raises:
        InputError, OSError: as :func:`atomic_target`.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_target(path) as (_, fd), open(fd, "wb", closefd=False) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
