"""Writing files so that a crash never leaves half of one, and never replacing what the user did not name.

- A regular file (or a name not yet taken) is written to a temporary file in the same folder, flushed to
  disk, then renamed over the target (``os.replace`` is atomic on POSIX). A new file gets the mode the
  umask allows; a file written over keeps its mode.
- A symbolic link is followed: its target is written, the link stays.
- Anything else (a device such as /dev/null, a FIFO) is written in place: renaming over it would replace
  the device or pipe with a regular file.

Temporary files are named ``.<name>.<random>.tmp``; ``remove_stale_temporaries`` clears those a killed
process left behind, and an error while writing names the file the user asked for, never the temporary.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` with a binary handle, then move what it wrote to ``path`` in one step (see the
    module's docstring for symbolic links, devices and FIFOs)."""
    path = Path(os.path.realpath(path))  # a symbolic link's target, whatever the chain
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "it is a folder, not a file", str(path))
    if mode is not None and not stat.S_ISREG(mode):
        _write_in_place(path, write)
        return
    keep_mode = stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask()
    _through_temporary(path, write, keep_mode, os.replace)


def _through_temporary(path: Path, write, mode: int, place) -> None:
    """``write`` into a temporary file beside ``path``, synced to disk and given ``mode``; then
    ``place(temporary, path)`` (``os.replace``, or ``os.link``, which never replaces). No temporary file
    outlives the call, even when a signal's exception (Ctrl-C, SIGTERM) arrives as the file is created:
    its name is chosen here, before the file exists and inside the ``try`` whose ``finally`` removes it
    (``tempfile.mkstemp`` returns the name only once the file exists). An OSError names ``path``, keeping
    its kind (FileExistsError stays one)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    temporary = None
    try:
        while True:
            temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
            try:
                descriptor = os.open(temporary, flags, 0o600)
                break
            except FileExistsError:
                temporary = None  # another writer's file, never this call's to remove
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        place(temporary, path)
    except OSError as error:
        raise _naming(error, path) from None
    finally:
        if temporary is not None:
            _remove(temporary)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write_in_place(path: Path, write: Callable[[BinaryIO], None]) -> None:
    try:
        with open(path, "wb") as handle:
            write(handle)
    except OSError as error:
        raise _naming(error, path) from None


def _naming(error: OSError, path: Path) -> OSError:
    """The same error, naming the file the user asked for rather than a temporary one (or none)."""
    if error.errno is None:
        return OSError(errno.EIO, str(error), str(path))
    return OSError(error.errno, error.strerror or os.strerror(error.errno), str(path))  # its own subclass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_new_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, which must not exist: the whole file appears at once (a link to a
    finished temporary file), and a file that appeared meanwhile is never replaced (FileExistsError)."""
    path = Path(path)
    _through_temporary(path, lambda handle: handle.write(text.encode("utf-8")), 0o666 & ~_umask(), os.link)


def remove_stale_temporaries(folder: Path, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files ``atomic_write`` makes for ``names`` in ``folder`` (left by a process
    that was killed while writing); the caller must be the folder's only writer. Returns what it removed."""
    removed = []
    for name in names:
        for leftover in Path(folder).glob(f".{name}.*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file (through links, relative paths or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
