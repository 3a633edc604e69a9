"""Atomic file writes (write beside the target, fsync, then rename over it) and the cache folder.

A crash or Ctrl-C leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# numpy, torch and safetensors are imported by the writers that need them: the command line
# imports this module before it knows whether a command will load torch at all.


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
