"""The runs directory as the API sees it: run folders addressed by name only, described, and
loaded with a small cache.

A run is addressed by its folder name only, checked against RUN_NAME and resolved inside the runs
directory (no "..", no slashes, no absolute paths, no symlink out of it); a bad name gets 400, a
missing run 404, a folder that cannot be loaded 422, each naming "run".
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path

from fastapi import HTTPException

from ..config import ConfigError, config_from_run_file
from ..runs import RunError, load_run
from ..training import WEIGHTS
from .limits import RUN_CACHE_SIZE, RUN_NAME
from .request_models import check_run_name


class RunStore:
    """Finds, describes and loads the runs under one directory; caches loaded models."""

    def __init__(self, runs_dir: Path):
        self.root = Path(runs_dir)
        self._cache: OrderedDict[str, tuple[tuple, object]] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The folder of run ``name``, guaranteed to lie directly inside the runs directory."""
        try:
            check_run_name(name)
        except ValueError as exc:
            raise HTTPException(400, f"run: {exc}") from None
        root = self.root.resolve()
        path = (root / name).resolve()
        if path.parent != root:  # e.g. a symlink pointing out of the runs directory
            raise HTTPException(400, f"run: {name!r} is not inside the runs directory")
        return path

    def existing(self, name: str) -> Path:
        path = self.path(name)
        if not (path / "run.json").is_file():
            raise HTTPException(404, f"run: no run called {name!r} in the runs directory")
        return path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and RUN_NAME.fullmatch(p.name) and (p / "run.json").is_file():
                out.append(p.name)
        return out

    def summary(self, name: str, busy: set[str] = frozenset()) -> dict:
        path = self.path(name)
        out: dict = {"name": name, "busy": name in busy, "has_weights": (path / WEIGHTS).is_file()}
        try:
            info = json.loads((path / "run.json").read_text())
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return {**out, "status": "unreadable", "usable": False, "error": f"run.json: {exc}"}
        out.update(
            status=str(info.get("status", "unknown")),
            step=info.get("step"),
            steps=info.get("steps"),
            data=info.get("data"),
            dim=info.get("dim"),
            # run.json's "shape" is (D,) for points and (C, H, W) for images (runs.Run.sample_shape).
            kind="image" if isinstance(info.get("shape"), list) and len(info["shape"]) == 3 else "points",
            shape=info.get("shape"),
            num_classes=int(info.get("num_classes", 0) or 0),
            class_names=[str(c) for c in info.get("class_names") or []],
            train_seconds=info.get("train_seconds"),
            modified=(path / "run.json").stat().st_mtime,
        )
        try:
            cfg = config_from_run_file(path / "config.toml")
            out["schedule"] = {"kind": cfg.schedule.kind, "T": cfg.schedule.T}
            sc = cfg.sample
            out["sample"] = {"sampler": sc.sampler, "steps": sc.steps, "n": sc.n, "seed": sc.seed, "spacing": sc.spacing, "eta": sc.eta}
            if hasattr(sc, "guidance"):
                out["sample"]["guidance"] = sc.guidance
        except (ConfigError, OSError) as exc:
            out["error"] = str(exc)
        out["usable"] = out["has_weights"] and "error" not in out and out["status"] != "failed"
        return out

    def load(self, name: str):
        """The loaded run (cached until its weights, run.json or config.toml change)."""
        path = self.existing(name)
        stamp = tuple((path / f).stat().st_mtime_ns if (path / f).exists() else 0 for f in (WEIGHTS, "run.json", "config.toml"))
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(name)
                return hit[1]
            try:
                run = load_run(path, device="cpu")
            except (RunError, ConfigError) as exc:
                msg = " ".join(str(exc).split()).replace(str(self.root.resolve()) + "/", "")
                raise HTTPException(422, f"run: {name!r} cannot be loaded: {msg}") from None
            except Exception as exc:  # noqa: BLE001 - a folder edited by hand can fail anywhere
                raise HTTPException(422, f"run: {name!r} cannot be loaded ({type(exc).__name__}: {exc})") from None
            self._cache[name] = (stamp, run)
            while len(self._cache) > RUN_CACHE_SIZE:
                self._cache.popitem(last=False)
            return run

    def free_name(self, base: str) -> str:
        """``base`` made a valid run name, with "-2", "-3", ... added until no folder has it."""
        base = re.sub(r"[^A-Za-z0-9_.-]", "-", base)[:56].strip(".-") or "run"
        if not self.path(base).exists():
            return base
        i = 2
        while self.path(f"{base}-{i}").exists():
            i += 1
        return f"{base}-{i}"
