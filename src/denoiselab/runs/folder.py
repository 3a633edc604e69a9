"""A run folder on disk: the one owner of its file names, of run.json's schema, and of reading and
writing them (``RunFolder``).

A run folder is self-describing; ``sample``, ``evaluate``, ``plot`` and the playground need only
what it holds:

    config.toml        the resolved recipe
    run.json           the run's description (its schema is ``RunFolder.write_new``'s):
                       format, status (training | interrupted | trained | complete | failed),
                       step, steps, train_seconds; dim and shape (one sample in model space: (D,)
                       for points, (C, H, W) for images or a spatial latent); n_train, n_held_out;
                       normalization; x0_bound (the box of sample.clip_x0); data; num_classes,
                       class_names, class_counts.  A latent run adds "latent" {autoencoder,
                       sha256, image_shape, latent_scale}; a completed autoencoder latent_scale
                       and latent_shape; a failed run error and checkpoint_step.  A trained
                       network: train_flops_per_step (one step's forward and backward,
                       counted once) and train_flops (that times the steps trained).
    data.npy           the training points (data units) or images (pixels in [-1, 1])
    labels.npy         their classes (conditional runs only)
    held_out.npy       images only: the held-out split, with held_out_labels.npy
    latents.npy        latent runs only: the training images encoded once, what the denoiser trains on
    pairs.npy          reflow runs only: (N, 2, ...) the teacher's noise [:, 0] and its solve [:, 1], model
                       units, what the student trains on (run.json's "teacher" says how they were drawn)
    autoencoder/       a latent run's autoencoder when trained as stage one (a run folder itself)
    model.safetensors  the weights used for sampling
    checkpoint.safetensors  what resuming training needs (model, EMA, optimiser, RNG, losses)
    metrics.json       the metrics measured when the run completed
    tuned_grids.json   time grids tuned to the model (denoiselab tune-steps)
    classifier.json, classifier.safetensors, classifier-checkpoint.safetensors
                       the run's noise-conditional classifier (denoiselab train-classifier)
    .train.lock        held while a process trains into the folder
    ema/snapshot-NNNNNNNN.safetensors
                       post-hoc EMA (train.ema_snapshot_every): the tracked power-function EMAs
                       at step N, one file a step, prefixed 0., 1., ... in the order of the
                       sigma_rels its metadata lists (posthoc_ema.py); `denoiselab ema` records
                       the length it reconstructed in run.json's posthoc_ema
    tokens.npy, captions.json  text-to-image runs: the training captions' token ids (N, L), and
                       the captions as written (training and held-out); run.json adds "text"
                       {vocab_size, length, tokenizer}
    text-encoder/      a text-to-image run's text encoder, pretrained CLIP-style before the
                       denoiser: tokenizer.json, run.json (status, step, retrieval accuracy),
                       its checkpoint and weights

This module imports neither torch nor numpy at load time (numpy, safetensors and the sampler
grids are imported by the methods that need them), so the command line answers "no such run"
before torch is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import files
from ..config import Config, ConfigError, config_from_run_file, dump_config
from ..errors import InputError

if TYPE_CHECKING:  # annotations only: numpy and the data package are imported by the methods that need them
    import numpy as np

    from ..data import Normalization

INFO = "run.json"
CONFIG = "config.toml"
DATA = "data.npy"
LABELS = "labels.npy"
HELD_OUT, HELD_OUT_LABELS = "held_out.npy", "held_out_labels.npy"  # images only
LATENTS = "latents.npy"  # latent runs only
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.json"
TUNED_GRIDS = "tuned_grids.json"
CLASSIFIER_INFO = "classifier.json"
CLASSIFIER_WEIGHTS = "classifier.safetensors"
CLASSIFIER_CHECKPOINT = "classifier-checkpoint.safetensors"
LOCK_NAME = ".train.lock"
EMA_SNAPSHOTS = "ema"  # post-hoc EMA's snapshots: EMA_SNAPSHOTS/snapshot-{step:08d}.safetensors
EMA_SNAPSHOT_PREFIX, EMA_SNAPSHOT_SUFFIX = "snapshot-", ".safetensors"
STAGE_ONE = "autoencoder"  # the folder, inside a latent run's, of the autoencoder trained as stage one
PAIRS = "pairs.npy"  # reflow runs only (denoiselab distill): the teacher's (noise, sample) pairs, model units
ROUNDS = "rounds"  # progressive distillation (denoiselab distill): the run folders of the rounds before the last, round-K
TEXT_STAGE = "text-encoder"  # the folder, inside a text-to-image run's, of its pretrained text encoder
TOKENIZER = "tokenizer.json"
TOKENS, CAPTIONS = "tokens.npy", "captions.json"  # text-to-image runs only

# The files every usable run folder holds, checked without torch (RunFolder.problem).
REQUIRED = (INFO, CONFIG, WEIGHTS, DATA)
# The files whose change makes a loaded run stale (the playground's cache).
STAMP_FILES = (WEIGHTS, INFO, CONFIG, DATA, LABELS)
INFO_FORMAT = 1
TUNED_GRIDS_VERSION = 1


def tuned_grid_key(sampler: str, evaluations: int) -> str:
    """The key of a tuned grid in its file: one grid per sampler and evaluation count."""
    return f"{sampler}/{evaluations}"


class RunError(InputError):
    """A missing, incomplete or corrupt run folder; the message names the file."""


class RunFolderError(InputError):
    """A new run was asked for in a folder that already holds something."""


class RunBusyError(InputError, RuntimeError):
    """Another process holds the run folder's training lock."""


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


def _file(name: str) -> property:
    """The path of the run folder's file ``name``, as a property of RunFolder."""
    return property(lambda self: self.path / name, doc=f"The path of the run's {name}.")


@dataclass
class RunData:
    """What a run trains on, as stored in its folder: the description, the data (points in data
    units or images), the labels (conditional runs) and the points' normalisation."""

    info: dict
    data: np.ndarray
    labels: np.ndarray | None
    normalization: Normalization


class RunFolder:
    """One run folder: its files' paths, and reading and writing them (see the module text)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- paths ------------------------------------------------------------------------------
    info_path = _file(INFO)
    config_path = _file(CONFIG)
    data_path = _file(DATA)
    weights = _file(WEIGHTS)
    checkpoint = _file(CHECKPOINT)
    metrics_path = _file(METRICS)
    tuned_grids_path = _file(TUNED_GRIDS)
    classifier_weights = _file(CLASSIFIER_WEIGHTS)
    classifier_checkpoint = _file(CLASSIFIER_CHECKPOINT)
    classifier_info_path = _file(CLASSIFIER_INFO)

    def stage_one(self) -> RunFolder:
        """The folder of a latent run's autoencoder trained as stage one."""
        return RunFolder(self.path / STAGE_ONE)

    def distillation_round(self, k: int) -> RunFolder:
        """The folder of round ``k`` of a progressive distillation, one before the last (the last is this run)."""
        return RunFolder(self.path / ROUNDS / f"round-{k}")

    def text_stage(self) -> RunFolder:
        """The folder of a text-to-image run's text encoder, pretrained before the denoiser."""
        return RunFolder(self.path / TEXT_STAGE)

    # -- a text-to-image run ----------------------------------------------------------------
    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER

    def write_tokenizer(self, tokenizer: dict) -> None:
        files.write_json(self.tokenizer_path, tokenizer)

    def read_tokenizer(self) -> dict:
        """The tokenizer (text.Tokenizer.to_dict); OSError or ValueError when unreadable."""
        return json.loads(self.tokenizer_path.read_text())

    def record_text(self, info: dict, *, tokens: np.ndarray, captions: list[str], held_out_captions: list[str], tokenizer: dict, encoder: str) -> None:
        """A new text-to-image run's captions: their token ids, the captions as written, and in
        run.json the tokenizer's size and length and its text encoder's folder (``encoder``,
        relative to this one)."""
        files.write_array(self.path / TOKENS, tokens)
        files.write_json(self.path / CAPTIONS, {"train": list(captions), "held_out": list(held_out_captions)})
        info["text"] = {"vocab_size": len(tokenizer["vocab"]), "length": int(tokenizer["length"]), "encoder": encoder}
        self.write_info(info)

    def read_tokens(self) -> np.ndarray:
        return self._array(TOKENS)

    def read_captions(self) -> dict:
        """{"train": [...], "held_out": [...]}: a text-to-image run's captions as written."""
        return json.loads((self.path / CAPTIONS).read_text())

    # -- what the folder is -----------------------------------------------------------------
    def problem(self) -> str | None:
        """Why the folder is not a usable run (one line naming it), or None when its files are there."""
        if not self.path.is_dir():
            return f"{self.path}: no such run folder"
        for name in REQUIRED:
            if not (self.path / name).is_file():
                return f"{self.path}: not a complete denoiselab run (missing {name}); train one with: denoiselab train --out NEW_FOLDER"
        return None

    def is_run(self) -> bool:
        """Whether the folder has a run description (a run, trained or not)."""
        return self.info_path.is_file()

    def has_description(self) -> bool:
        """run.json and config.toml: what a command needs to know the run."""
        return self.info_path.is_file() and self.config_path.is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def has_weights(self) -> bool:
        return self.weights.is_file()

    def holds_anything(self, allow: tuple[str, ...] = ()) -> bool:
        """Whether the path exists and is not an empty folder (entries named in ``allow`` aside)."""
        return self.path.exists() and (not self.path.is_dir() or any(p.name not in allow for p in self.path.iterdir()))

    def check_new(self, allow: tuple[str, ...] = ()) -> None:
        """A new run goes into a missing or empty folder, never over something already there (but
        the names in ``allow``: a latent run's stage-one autoencoder)."""
        if self.holds_anything(allow):
            raise RunFolderError(f"{self.path}: folder exists and is not empty; choose another, or resume it")

    def stamp(self) -> tuple:
        """Modification times of STAMP_FILES (0 for a missing one): changes when the run does."""
        return tuple((self.path / f).stat().st_mtime_ns if (self.path / f).exists() else 0 for f in STAMP_FILES)

    # -- the training lock ------------------------------------------------------------------
    def lock(self) -> RunLock:
        """Take the folder's exclusive training lock, the file LOCK_NAME (removed again when the
        lock is released; the lock itself also ends when its process dies, and a file left by a
        killed process is taken over).  Two processes training into one folder would interleave
        their checkpoints; the second one gets RunBusyError instead."""
        path = self.path / LOCK_NAME
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
                raise RunBusyError(f"{self.path}: another process is training this run; wait for it or stop it first") from None
            # The previous holder removes the file before it lets go: if it did so after we
            # opened it, our lock is on a file no one else can see; take the lock of the current file.
            try:
                current = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                return RunLock(fh, path)
            fh.close()

    def is_busy(self) -> bool:
        """Whether a process holds the folder's training lock right now (creates nothing)."""
        try:
            import fcntl
        except ImportError:
            return False
        try:
            fh = open(self.path / LOCK_NAME)
        except OSError:
            return False
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    # -- run.json ---------------------------------------------------------------------------
    def read_info(self) -> dict:
        """The run's description; OSError or ValueError (JSON, or not an object) when unreadable."""
        info = json.loads(self.info_path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        return info

    def write_info(self, info: dict) -> None:
        files.write_json(self.info_path, info)

    def status(self) -> str | None:
        """run.json's status; None when there is none or it cannot be read."""
        try:
            return self.read_info().get("status")
        except (OSError, ValueError):
            return None

    def record_progress(self, info: dict, status: str, step: int, train_seconds: float) -> None:
        """The training loop's state in ``info`` (updated in place) and on disk; with the
        training FLOPs so far when one step's count is recorded (record_step_flops)."""
        info.update(status=status, step=step, train_seconds=train_seconds)
        if "train_flops_per_step" in info:
            info["train_flops"] = float(info["train_flops_per_step"]) * step
        self.write_info(info)

    def record_step_flops(self, info: dict, flops: int) -> None:
        """One training step's floating-point operations (training/flops.py) in ``info`` and on disk."""
        info["train_flops_per_step"] = int(flops)
        self.write_info(info)

    def mark_complete(self, info: dict) -> None:
        info["status"] = "complete"
        self.write_info(info)

    def mark_failed(self, error: str | None = None, step: int | None = None) -> None:
        """Status "failed" in run.json, if the run got that far.  With ``error`` (its first 500
        characters are kept) and ``step``, where training got to: run.json's own "step" is that of
        the last checkpoint, which is kept as "checkpoint_step" (what ``--resume`` would start from)."""
        try:
            info = self.read_info()
        except (OSError, ValueError):
            return
        if error is None:
            info["status"] = "failed"
        else:
            checkpoint_step = int(info.get("step") or 0)
            info.update(status="failed", error=error[:500], step=max(checkpoint_step, int(step or 0)), checkpoint_step=checkpoint_step)
        self.write_info(info)

    # -- a new run --------------------------------------------------------------------------
    def write_new(
        self,
        cfg: Config,
        *,
        data_name: str,
        data: np.ndarray,
        labels: np.ndarray | None,
        class_names: tuple[str, ...],
        normalization: Normalization,
        held_out: np.ndarray | None = None,
        held_out_labels: np.ndarray | None = None,
    ) -> dict:
        """A new run's data, recipe and description, written before its first training step;
        returns the description.  ``data`` (N, D) points in data units or (N, C, H, W) images;
        ``normalization`` (data.Normalization) maps points to the model's units."""
        import numpy as np

        num_classes = len(class_names) if labels is not None else 0
        files.write_array(self.data_path, data)
        if labels is not None:
            files.write_array(self.path / LABELS, labels)
        if held_out is not None:
            files.write_array(self.path / HELD_OUT, held_out)
            if held_out_labels is not None:
                files.write_array(self.path / HELD_OUT_LABELS, held_out_labels)
        self.write_config(cfg)
        info = {
            "format": INFO_FORMAT,
            "status": "training",
            "step": 0,
            "steps": cfg.train.steps,
            "dim": int(data.shape[1]),
            # (D,) for points, (C, H, W) for images: the shape of one sample.
            "shape": [int(v) for v in data.shape[1:]],
            "n_train": int(len(data)),
            "n_held_out": 0 if held_out is None else int(len(held_out)),
            "normalization": normalization.to_dict(),
            # Box for sample.clip_x0: pixels live in [-1, 1]; points get 10% beyond the
            # largest |coordinate| of the normalised data.
            "x0_bound": 1.0 if data.ndim == 4 else float(1.1 * np.abs(normalization.encode(data)).max()),
            "data": data_name,
            "num_classes": num_classes,
            "class_names": list(class_names) if num_classes else [],
            "class_counts": [] if labels is None else np.bincount(labels, minlength=num_classes).tolist(),
            "train_seconds": 0.0,
        }
        self.write_info(info)
        return info

    def write_config(self, cfg: Config) -> None:
        files.write_text(self.config_path, dump_config(cfg))

    def read_config(self) -> Config:
        return config_from_run_file(self.config_path)

    def config_text(self) -> str | None:
        """The stored recipe as written, or None when there is none."""
        return self.config_path.read_text() if self.config_path.is_file() else None

    # -- arrays -----------------------------------------------------------------------------
    def _array(self, name: str, mmap_mode: str | None = None) -> np.ndarray:
        import numpy as np

        return np.load(self.path / name, mmap_mode=mmap_mode, allow_pickle=False)

    def read_data(self, mmap_mode: str | None = None) -> np.ndarray:
        return self._array(DATA, mmap_mode)

    def read_labels(self) -> np.ndarray:
        return self._array(LABELS)

    def read_held_out(self, mmap_mode: str | None = None) -> np.ndarray:
        return self._array(HELD_OUT, mmap_mode)

    def read_held_out_labels(self) -> np.ndarray:
        return self._array(HELD_OUT_LABELS)

    def read_run_data(self) -> RunData:
        """The description, data, labels and normalisation a resumed training (or the run's
        classifier) trains on."""
        info = self.read_info()
        data = self.read_data()
        labels = self.read_labels() if int(info.get("num_classes", 0)) else None
        return RunData(info, data, labels, normalization_of(info))

    # -- a latent run -----------------------------------------------------------------------
    def record_latents(self, info: dict, latents: np.ndarray, *, autoencoder: str, sha256: str, image_shape, latent_scale: float) -> None:
        """A new latent run's training set, encoded: latents.npy, and in run.json the shape of a
        latent, its x0 clipping box and the autoencoder (``autoencoder``: its folder as recorded,
        relative to this one for stage one; ``sha256`` of its weights)."""
        import numpy as np

        files.write_array(self.path / LATENTS, latents)
        info.update(
            dim=int(latents.shape[1]),
            shape=[int(v) for v in latents.shape[1:]],
            # sample.clip_x0 in latent space: 10% beyond the largest |latent| of the training set.
            x0_bound=float(1.1 * np.abs(latents).max()),
            latent={"autoencoder": autoencoder, "sha256": sha256, "image_shape": [int(v) for v in image_shape], "latent_scale": float(latent_scale)},
        )
        self.write_info(info)

    def read_latents(self) -> np.ndarray:
        return self._array(LATENTS)

    # -- a reflow run ------------------------------------------------------------------------
    def write_pairs(self, noise: np.ndarray, samples: np.ndarray) -> None:
        """A reflow run's training pairs, written before its folder's description: row i is the
        noise noise[i] and the teacher's solve of it, samples[i] (model units)."""
        import numpy as np

        self.path.mkdir(parents=True, exist_ok=True)
        files.write_array(self.path / PAIRS, np.stack([noise, samples], axis=1).astype(np.float32))

    def has_pairs(self) -> bool:
        return (self.path / PAIRS).is_file()

    def read_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(noise, samples) of a reflow run, as written by ``write_pairs``."""
        pairs = self._array(PAIRS)
        return pairs[:, 0], pairs[:, 1]

    def resolve_recorded(self, info: dict) -> tuple[Path, str]:
        """(folder, sha256) of the autoencoder a latent run's description records."""
        record = info["latent"]
        path = Path(record["autoencoder"])
        return (path if path.is_absolute() else self.path / path), record["sha256"]

    def weights_sha256(self) -> str:
        """The content hash of the weights file, which ties a latent run to its autoencoder."""
        h = hashlib.sha256()
        with open(self.weights, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def check_unchanged(self, sha256: str, key: str) -> None:
        """This autoencoder's weights are still the ones a latent run recorded (ConfigError, one
        line starting with ``key``, when missing or changed)."""
        if not self.weights.is_file():
            raise ConfigError(f"{key}: the autoencoder {self.path} is missing (no {WEIGHTS}); this run cannot decode without it")
        if self.weights_sha256() != sha256:
            raise ConfigError(
                f"{key}: the autoencoder {self.path} has changed since this run was trained on it (sha256 {sha256[:12]}...); "
                "retrain the run or restore the autoencoder"
            )

    def record_latent_scale(self, info: dict, scale: float, latent_shape) -> None:
        """A completed autoencoder's latent scale (stored with its weights too) and latent shape."""
        info["latent_scale"] = scale
        info["latent_shape"] = list(latent_shape)
        self.write_info(info)

    # -- metrics ----------------------------------------------------------------------------
    def write_metrics(self, values: dict) -> Path:
        return files.write_json(self.metrics_path, values)

    def read_metrics(self) -> dict | None:
        """The metrics measured when the run completed; None when there are none or they cannot be read."""
        try:
            return json.loads(self.metrics_path.read_text())
        except (OSError, ValueError):
            return None

    # -- the checkpoint, for reading ---------------------------------------------------------
    def read_losses(self, max_points: int | None = None) -> np.ndarray:
        """The loss of every training step, from the checkpoint (empty when there is none or it
        cannot be read, e.g. while being replaced); thinned to ``max_points`` bin means."""
        import numpy as np
        from safetensors import safe_open

        try:
            with safe_open(str(self.checkpoint), framework="pt") as fh:
                losses = fh.get_tensor("losses").numpy()
        except Exception:  # noqa: BLE001 - missing, being written, or corrupt: no curve
            return np.zeros(0)
        if max_points is not None and len(losses) > max_points:
            edges = np.linspace(0, len(losses), max_points + 1).astype(int)
            losses = np.add.reduceat(losses, edges[:-1]) / np.diff(edges)
        return losses

    def checkpoint_section(self, prefix: str) -> dict | None:
        """The checkpoint's tensors whose names start with ``prefix`` (prefix removed); None when
        the run has no checkpoint."""
        if not self.checkpoint.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(self.checkpoint), framework="pt") as fh:
            return {k[len(prefix) :]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}

    # -- tuned grids --------------------------------------------------------------------------
    def read_tuned_grids(self) -> dict[str, dict]:
        """The tuned grids, keyed "sampler/evaluations" ({} when there are none); RunError, one
        line naming the file, when it is corrupt."""
        from ..samplers import check_grid

        path = self.tuned_grids_path
        if not path.exists():
            return {}
        hint = "delete it or run denoiselab tune-steps again"
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunError(f"{path}: cannot be read as JSON ({exc}); {hint}") from None
        grids = data.get("grids") if isinstance(data, dict) else None
        if not isinstance(grids, dict) or data.get("version") != TUNED_GRIDS_VERSION:
            raise RunError(f"{path}: expected {{\"version\": {TUNED_GRIDS_VERSION}, \"grids\": {{...}}}}; {hint}")
        for key, entry in grids.items():
            try:
                check_grid(entry["grid"], f"{path} [{key}] grid")
            except (TypeError, KeyError):
                raise RunError(f"{path} [{key}]: expected an entry with a grid (a list of times); {hint}") from None
            except ValueError as exc:
                raise RunError(f"{exc}; {hint}") from None
        return grids

    def write_tuned_grids(self, grids: dict[str, dict]) -> Path:
        return files.write_json(self.tuned_grids_path, {"version": TUNED_GRIDS_VERSION, "grids": grids})

    def tuned_grid(self, sampler: str, evaluations: int) -> list[float] | None:
        """The times of the run's tuned grid for this sampler and evaluation count, or None."""
        entry = self.read_tuned_grids().get(tuned_grid_key(sampler, evaluations))
        return None if entry is None else [float(t) for t in entry["grid"]]

    def save_tuned_grid(self, result) -> Path:
        """Add (or replace) one search's result (a tuning.TunedGrid) among the tuned grids, atomically."""
        grids = self.read_tuned_grids()
        grids[tuned_grid_key(result.sampler, result.evaluations)] = dataclasses.asdict(result)
        return self.write_tuned_grids(grids)

    # -- post-hoc EMA snapshots ------------------------------------------------------------------
    def ema_snapshot_path(self, step: int) -> Path:
        return self.path / EMA_SNAPSHOTS / f"{EMA_SNAPSHOT_PREFIX}{step:08d}{EMA_SNAPSHOT_SUFFIX}"

    def write_ema_snapshot(self, step: int, states: list[dict], sigma_rels: list[float]) -> Path:
        """The tracked EMAs' weights (one state dict per sigma_rel) at ``step``, atomically."""
        tensors = {f"{i}.{k}": v for i, state in enumerate(states) for k, v in state.items()}
        return files.write_tensors(self.ema_snapshot_path(step), tensors, {"step": str(step), "sigma_rels": json.dumps(list(sigma_rels))})

    def ema_snapshot_steps(self) -> list[int]:
        """The steps of the stored snapshots, in order ([] when there are none)."""
        folder = self.path / EMA_SNAPSHOTS
        if not folder.is_dir():
            return []
        steps = []
        for p in folder.iterdir():
            digits = p.name[len(EMA_SNAPSHOT_PREFIX) : -len(EMA_SNAPSHOT_SUFFIX)]
            if p.name.startswith(EMA_SNAPSHOT_PREFIX) and p.name.endswith(EMA_SNAPSHOT_SUFFIX) and digits.isdigit():
                steps.append(int(digits))
        return sorted(steps)

    def read_ema_snapshot(self, step: int) -> tuple[list[dict], list[float]]:
        """(one state dict per tracked EMA, their sigma_rels) at ``step``; RunError, one line
        naming the file, when it is missing or cannot be read."""
        from safetensors import safe_open

        path = self.ema_snapshot_path(step)
        if not path.is_file():
            raise RunError(f"{path}: missing post-hoc EMA snapshot; the run cannot reconstruct EMA lengths without it")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                sigma_rels = [float(v) for v in json.loads(meta["sigma_rels"])]
                if int(meta["step"]) != step:
                    raise ValueError(f"it holds step {meta['step']}")
                states: list[dict] = [{} for _ in sigma_rels]
                for key in fh.keys():
                    index, name = key.split(".", 1)
                    states[int(index)][name] = fh.get_tensor(key)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file raises several types
            raise RunError(f"{path}: corrupt post-hoc EMA snapshot ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        return states, sigma_rels

    def record_posthoc_ema(self, info: dict, sigma_rel: float, step: int, relative_error: float) -> None:
        """The EMA length that ``denoiselab ema`` wrote into the run's weights."""
        info["posthoc_ema"] = {"sigma_rel": sigma_rel, "step": step, "profile_error": relative_error}
        self.write_info(info)

    # -- the noise-conditional classifier -------------------------------------------------------
    def has_classifier(self) -> bool:
        return self.classifier_weights.is_file() and self.classifier_info_path.is_file()

    def read_classifier_info(self) -> dict:
        """classifier.json; OSError or ValueError when unreadable."""
        return json.loads(self.classifier_info_path.read_text())

    def write_classifier_info(self, info: dict) -> None:
        files.write_json(self.classifier_info_path, info)


# -- run.json's fields, read ------------------------------------------------------------------


def sample_shape(info: dict) -> tuple[int, ...]:
    """One sample's shape in model space: (D,) for points, (C, H, W) for images or a spatial latent."""
    return tuple(int(v) for v in info.get("shape", [info["dim"]]))


def data_shape(info: dict) -> tuple[int, ...]:
    """One sample's shape in data units: a latent run's decoded image, else sample_shape."""
    return tuple(int(v) for v in info["latent"]["image_shape"]) if "latent" in info else sample_shape(info)


def normalization_of(info: dict) -> Normalization:
    """The data.Normalization that maps the run's points to the model's units."""
    from ..data import Normalization

    return Normalization.from_dict(info["normalization"])


def read_losses(run_dir: str | Path, max_points: int | None = None) -> np.ndarray:
    """RunFolder(run_dir).read_losses(max_points)."""
    return RunFolder(run_dir).read_losses(max_points)
