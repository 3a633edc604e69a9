"""The runs directory as the API sees it: run folders addressed by name only, described, and
loaded with a small cache.

A run is addressed by its folder name only, checked against RUN_NAME and resolved inside the runs
directory (no "..", no slashes, no absolute paths, no symlink out of it); a bad name gets 400, a
missing run 404, a folder that cannot be loaded 422, each naming "run".

Links are distrusted: a run folder that is a symbolic link is left out of the listing (logged
once) and refused by name; a file inside a run folder that resolves outside that folder (a link
to elsewhere on the machine) makes the run refused, before anything is read.  A run is listed as
usable only when its files load (the verdict is cached until they change).  Error messages name
the run by its name and its files by their names, never by the machine's absolute paths.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from fastapi import HTTPException

from ..choices import JUMP_SAMPLER_NAMES
from ..config import ConfigError
from ..runs import RunError, load_run
from ..runs.folder import INFO, RunFolder, data_shape, sample_shape
from .limits import MAX_ECHO, RUN_CACHE_SIZE, RUN_NAME
from .request_models import check_run_name

log = logging.getLogger("denoiselab.serve")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s/'\":,()]+)+/([^\s/'\":,()]*)")


def public_message(message: str, limit: int = MAX_ECHO) -> str:
    """``message`` on one line, absolute paths cut to their last part, at most ``limit`` characters."""
    text = _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", " ".join(str(message).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escaping_files(folder: Path) -> list[str]:
    """The entries of run folder ``folder`` that resolve outside it (links to elsewhere)."""
    root = folder.resolve()
    out = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink():
            try:
                target = entry.resolve()
            except (OSError, RuntimeError):  # a loop of links
                out.append(entry.name)
                continue
            if not target.is_relative_to(root) or target == root:
                out.append(entry.name)
    return out


class RunStore:
    """Finds, describes and loads the runs under one directory; caches loaded models."""

    def __init__(self, runs_dir: Path):
        self.root = Path(runs_dir)
        self._cache: OrderedDict[str, tuple[tuple, object]] = OrderedDict()
        self._verdicts: dict[str, tuple[tuple, str | None]] = {}  # name -> (stamp, load error or None)
        self._lock = threading.Lock()
        self._skipped: set[str] = set()  # linked folders already logged

    def path(self, name: str) -> Path:
        """The folder of run ``name``, guaranteed to lie directly inside the runs directory."""
        try:
            check_run_name(name)
        except ValueError as exc:
            raise HTTPException(400, f"run: {exc}") from None
        root = self.root.resolve()
        if (root / name).is_symlink():  # a link, wherever it points, is not a run folder of this directory
            raise HTTPException(400, f"run: {name!r} is a link, not a run folder inside the runs directory")
        path = (root / name).resolve()
        if path.parent != root:
            raise HTTPException(400, f"run: {name!r} is not inside the runs directory")
        return path

    def refused(self, name: str, path: Path) -> str | None:
        """Why run ``name`` may not be read (files that link outside it), or None."""
        escaping = escaping_files(path)
        if escaping:
            return f"{', '.join(escaping)}: links outside the run folder {name!r}; refused"
        return None

    def existing(self, name: str) -> Path:
        path = self.path(name)
        if not RunFolder(path).is_run():
            raise HTTPException(404, f"run: no run called {name!r} in the runs directory")
        refused = self.refused(name, path)
        if refused:
            raise HTTPException(422, f"run: {refused}")
        return path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_symlink():
                if p.name not in self._skipped:
                    self._skipped.add(p.name)
                    log.warning("runs folder: skipping %r, a link (run folders must be real folders)", p.name[:MAX_ECHO])
                continue
            if p.is_dir() and RUN_NAME.fullmatch(p.name) and RunFolder(p).is_run():
                out.append(p.name)
        return out

    def summary(self, name: str, busy: set[str] = frozenset()) -> dict:
        path = self.path(name)
        folder = RunFolder(path)
        out: dict = {"name": name, "busy": name in busy, "has_weights": folder.has_weights()}
        refused = self.refused(name, path)
        if refused:
            return {**out, "status": "refused", "usable": False, "error": refused}
        try:
            info = folder.read_info()
        except (OSError, ValueError) as exc:
            return {**out, "status": "unreadable", "usable": False, "error": public_message(f"{INFO}: {exc}")}
        latent = isinstance(info.get("latent"), dict)
        shape = _shown_shape(info, latent)
        if latent:
            out["latent_shape"] = info.get("shape")
        out.update(
            status=str(info.get("status", "unknown")),
            step=info.get("step"),
            steps=info.get("steps"),
            data=info.get("data"),
            dim=info.get("dim"),
            kind="image" if shape is not None and len(shape) == 3 else "points",
            shape=shape,
            num_classes=int(info.get("num_classes", 0) or 0),
            class_names=[str(c) for c in info.get("class_names") or []],
            train_seconds=info.get("train_seconds"),
            has_classifier=folder.has_classifier(),  # classifier guidance (denoiselab train-classifier)
            text=isinstance(info.get("text"), dict),  # a text-to-image run: sampled from a prompt
            modified=folder.info_path.stat().st_mtime,
        )
        try:
            cfg = folder.read_config()
            out["schedule"] = {"kind": cfg.schedule.kind, "T": cfg.schedule.T}
            sc = cfg.sample
            out["sample"] = {"sampler": sc.sampler, "steps": sc.steps, "n": sc.n, "seed": sc.seed, "spacing": sc.grid, "eta": sc.eta}
            # A run trained to jump (MeanFlow, shortcut, consistency): the Reverse view offers its jump view (routes_jumps.py).
            out["jump_sampler"] = sc.sampler if sc.sampler in JUMP_SAMPLER_NAMES else None
            if hasattr(sc, "guidance"):
                out["sample"]["guidance"] = sc.guidance
            if cfg.model.arch == "autoencoder":  # runs.Run.is_autoencoder: listed, never sampled
                out["autoencoder"] = True
                out["error"] = "an autoencoder run: it encodes and decodes images and samples nothing; sample a latent run trained on it"
        except (ConfigError, OSError) as exc:
            out["error"] = public_message(exc)
        out["usable"] = out["has_weights"] and "error" not in out and out["status"] != "failed"
        if out["usable"]:
            error = self.load_error(name, path)
            if error:
                out.update(usable=False, error=error)
        return out

    def load_error(self, name: str, path: Path) -> str | None:
        """Why run ``name`` does not load (cached until its files change), or None when it does."""
        stamp = RunFolder(path).stamp()
        hit = self._verdicts.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            self.load(name)
            error = None
        except HTTPException as exc:
            error = str(exc.detail)
        self._verdicts[name] = (stamp, error)
        return error

    def load(self, name: str):
        """The loaded run (cached until its files change: RunFolder.stamp)."""
        path = self.existing(name)
        stamp = RunFolder(path).stamp()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(name)
                return hit[1]
            try:
                run = load_run(path, device="cpu")
            except (RunError, ConfigError) as exc:
                msg = " ".join(str(exc).split()).replace(str(path) + "/", "").replace(str(path), name)
                raise HTTPException(422, f"run: {name!r} cannot be loaded: {public_message(msg)}") from None
            except Exception as exc:  # noqa: BLE001 - a folder edited by hand can fail anywhere
                raise HTTPException(422, f"run: {name!r} cannot be loaded ({type(exc).__name__}: {public_message(exc)})") from None
            self._cache[name] = (stamp, run)
            while len(self._cache) > RUN_CACHE_SIZE:
                self._cache.popitem(last=False)
            return run

    def free_name(self, base: str) -> str:
        """``base`` made a valid run name, with "-2", "-3", ... added until no folder has it."""
        base = re.sub(r"[^A-Za-z0-9_.-]", "-", base)[:56].strip(".-") or "run"

        def taken(name: str) -> bool:  # a link counts as taken, wherever it points
            return os.path.lexists(self.root / name)

        if not taken(base):
            return base
        i = 2
        while taken(f"{base}-{i}"):
            i += 1
        return f"{base}-{i}"


def _shown_shape(info: dict, latent: bool) -> list[int] | None:
    """The shape the page shows a run as: one sample in data units (a latent run as the images it
    decodes to: runs.folder.data_shape); None for a description without a readable shape."""
    try:
        return list(data_shape(info) if latent else sample_shape(info))
    except (KeyError, TypeError, ValueError):
        return None
