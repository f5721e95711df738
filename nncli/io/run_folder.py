"""A training run's output folder: one run at a time, nothing half-replaced, no leftovers.

- **The lock.** A run holds ``flock`` on ``.nncli.lock`` (which holds its process id) for its lifetime; a
  second run into the same folder is refused, naming the holder. The kernel drops the lock when its holder
  dies, so the lock of a killed run is simply taken over. Creating the lock file is also the check that
  the folder can be written, before the first step.
- **Leftovers.** Temporary files of the run's own naming (``.model.npz.<random>.tmp`` and the like, see
  ``nncli.io.files``) that a killed run left are removed when the next run takes the lock.
- **All or nothing.** ``--overwrite`` writes the new run's files into ``.nncli-replacement/`` inside the
  folder; only when its first complete set (model, history, checkpoint) exists are they moved over the
  earlier run's, so a failure before that (a full disk, a kill) leaves the earlier run as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from nncli.errors import NncliError
from nncli.io.files import remove_stale_temporaries

LOCK_FILE = ".nncli.lock"
REPLACEMENT_FOLDER = ".nncli-replacement"


class RunFolder:
    """The lock on ``directory`` and where a run's files go: ``target`` is the folder itself, or the
    replacement folder until ``commit`` has moved a replacing run's first complete set into place.

    ``run_files`` are the names a run writes, in the order a replacement moves them (a run's end,
    ``metrics.json``, belongs last: an earlier run's metrics are removed before anything else moves)."""

    def __init__(self, directory: Path, run_files: Iterable[str], replacing: bool) -> None:
        self.directory = Path(directory)
        self.run_files = tuple(run_files)
        self.replacing = replacing
        self._descriptor: int | None = None

    @property
    def target(self) -> Path:
        return self.directory / REPLACEMENT_FOLDER if self.replacing else self.directory

    def __enter__(self) -> RunFolder:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._descriptor = _take_lock(self.directory)
        except OSError as error:
            raise NncliError(
                f"the output folder '{self.directory}' cannot be written ({error.strerror or error}); "
                f"choose another output.dir or make it writable"
            ) from None
        remove_stale_temporaries(self.directory, self.run_files)
        stale = self.directory / REPLACEMENT_FOLDER
        if stale.exists():  # a replacement that never completed: the earlier run is still whole
            shutil.rmtree(stale, ignore_errors=True)
        if self.replacing:
            self.target.mkdir()
        return self

    def commit(self, written: Iterable[str]) -> None:
        """Once a replacing run has written a complete set ``written``, move it over the earlier run's
        files and remove the earlier run's files it does not replace; afterwards, write in place."""
        if not self.replacing:
            return
        written = set(written)
        for name in reversed(self.run_files):  # the earlier run's end goes first
            if name not in written:
                (self.directory / name).unlink(missing_ok=True)
        for name in self.run_files:
            if name in written:
                os.replace(self.target / name, self.directory / name)
        shutil.rmtree(self.target, ignore_errors=True)
        self.replacing = False

    def __exit__(self, *exc) -> None:
        if self.replacing:  # the replacement never completed: drop it, the earlier run stays
            shutil.rmtree(self.target, ignore_errors=True)
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                (self.directory / LOCK_FILE).unlink()
            os.close(self._descriptor)
            self._descriptor = None


def _take_lock(directory: Path) -> int:
    """An open descriptor of ``directory``'s lock file, locked by this process, holding its id."""
    path = directory / LOCK_FILE
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(descriptor)
            raise NncliError(
                f"the output folder '{directory}' is in use by another nncli run (process {holder}); "
                f"wait for it to end, or train into another output.dir"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder removed between our open and our lock
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
            return descriptor
        os.close(descriptor)
