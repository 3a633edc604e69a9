"""Atomic file writes (write beside the target, fsync, then rename over it) and the cache folder.

A crash or Ctrl-C leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import InputError

# numpy, torch and safetensors are imported by the writers that need them: the command line
# imports this module before it knows whether a command will load torch at all.

WEIGHTS = "model.safetensors"  # the weights a run samples with (runs/folder.py)
# The files every usable run folder holds; checked here, without torch, so that a command given
# a wrong folder answers at once.
RUN_FILES = ("run.json", "config.toml", WEIGHTS, "data.npy")


def run_folder_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a usable run folder (one line naming it), or None when its files are there."""
    path = Path(path)
    if not path.is_dir():
        return f"{path}: no such run folder"
    for name in RUN_FILES:
        if not (path / name).is_file():
            return f"{path}: not a complete denoiselab run (missing {name}); train one with: denoiselab train --out NEW_FOLDER"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_tensors(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_array(path: Path, array) -> Path:
    import numpy as np

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    return _atomic(path, write)


def write_with(path: Path, writer) -> Path:
    """Atomically write with ``writer(tmp_path)`` (e.g. numpy.save or a figure's savefig)."""
    return _atomic(path, writer)


def cache_dir() -> Path:
    """Where measured things that depend only on data are kept (image classifiers, metric
    floors): ``$DENOISELAB_CACHE``, else ``$XDG_CACHE_HOME/denoiselab``, else
    ``~/.cache/denoiselab``.  Everything in it can be deleted; it is measured again."""
    if os.environ.get("DENOISELAB_CACHE"):
        return Path(os.environ["DENOISELAB_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "denoiselab"
    return Path.home() / ".cache" / "denoiselab"


class RunBusyError(InputError, RuntimeError):
    """Another process holds the run folder's training lock."""


LOCK_NAME = ".train.lock"


class RunLock:
    """A held training lock: ``close()`` removes the lock file, then lets go of the lock."""

    def __init__(self, fh, path: Path):
        self._fh, self.path = fh, path

    def close(self) -> None:
        if self._fh.closed:
            return
        # Removed while still held, so no other process can find the path locked by nobody.
        self.path.unlink(missing_ok=True)
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def lock_run(run_dir: Path) -> RunLock:
    """Take the run folder's exclusive training lock, the file ``.train.lock`` (removed again
    when the lock is released; the lock itself also ends when its process dies, and a file left
    by a killed process is taken over).  Two processes training into one folder would
    interleave their checkpoints; the second one gets RunBusyError instead."""
    path = Path(run_dir) / LOCK_NAME
    try:
        import fcntl  # POSIX only; elsewhere the lock is skipped
    except ImportError:
        return RunLock(open(path, "a"), path)
    while True:
        fh = open(path, "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RunBusyError(f"{run_dir}: another process is training this run; wait for it or stop it first") from None
        # The previous holder removes the file before it lets go: if it did so after we opened
        # it, our lock is on a file no one else can see; take the lock of the current file.
        try:
            current = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return RunLock(fh, path)
        fh.close()


def run_is_busy(run_dir: Path) -> bool:
    """Whether a process holds the run folder's training lock right now (creates nothing)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fh = open(Path(run_dir) / LOCK_NAME)
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False
