"""How results travel to the page as JSON.

A batch is a panel: ``{"kind": "points", "dim": D, "points": [[x, y], ...]}`` for points (N, D),
``{"kind": "image", "shape": [N, C, H, W], "data": [...]}`` for images (values in model units,
[-1, 1] for clean pixels), so the page draws either.  Non-finite numbers never reach the JSON:
NaN becomes 0 in panels, and an infinite SNR becomes null.

The step-by-step frames of a reverse process (up to 4 panels x 250 steps x 1000 points) travel
compactly as ``frame_panel``: the same kind and shape, with the numbers as little-endian float16
in base64 (``"b64"``, ``"dtype": "float16"``; 2.7 bytes a number instead of about 8 as JSON
text, and no Python float per number while it is built).  float16 keeps 11 significant bits
(relative error <= 2^-11 = 0.05 %), far finer than a pixel of the page's plots; the final samples
and x_T stay exact JSON numbers.  api.js decodes them back into the plain panels above.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import torch
from fastapi.responses import Response

from ..schedules import Schedule


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=1e4, neginf=-1e4)


def panel(x, decimals: int = 4) -> dict:
    """A batch as the page draws it: points (N, D) or images (N, C, H, W)."""
    # Rounded in float64: float32 values rounded to 3 decimals print as 0.12300000339746475.
    a = _array(x).astype(np.float64)
    if a.ndim == 2:
        return {"kind": "points", "dim": int(a.shape[1]), "points": np.round(a, decimals).tolist()}
    if a.ndim == 4:
        return {"kind": "image", "shape": [int(s) for s in a.shape], "data": np.round(a.reshape(-1), 3).tolist()}
    raise ValueError(f"cannot display an array of shape {a.shape}")


def frame_panel(x) -> dict:
    """A batch as ``panel`` draws it, its numbers as base64 float16 (see the module's note)."""
    a = np.clip(_array(x), -65000.0, 65000.0).astype("<f2")  # float16's range; NaN is 0 already
    b64 = base64.b64encode(a.tobytes()).decode("ascii")
    if a.ndim == 2:
        return {"kind": "points", "dim": int(a.shape[1]), "n": int(a.shape[0]), "dtype": "float16", "b64": b64}
    if a.ndim == 4:
        return {"kind": "image", "shape": [int(s) for s in a.shape], "dtype": "float16", "b64": b64}
    raise ValueError(f"cannot display an array of shape {a.shape}")


def decode_panel(p: dict) -> np.ndarray:
    """The array of a panel, plain (``panel``) or compact (``frame_panel``): (N, D) or (N, C, H, W)."""
    if "b64" in p:
        flat = np.frombuffer(base64.b64decode(p["b64"]), dtype={"float16": "<f2", "float32": "<f4"}[p["dtype"]]).astype(np.float64)
        return flat.reshape((p["n"], p["dim"]) if p["kind"] == "points" else p["shape"])
    if p["kind"] == "points":
        return np.asarray(p["points"], dtype=np.float64).reshape(-1, p["dim"])
    return np.asarray(p["data"], dtype=np.float64).reshape(p["shape"])


def finite_or_none(v: float, digits: int = 4) -> float | None:
    """``v`` rounded to ``digits`` decimals, or None (JSON null) where it is infinite or NaN."""
    return round(float(v), digits) if math.isfinite(float(v)) else None


def _sig(values: torch.Tensor, digits: int = 6) -> list[float | None]:
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in values.tolist()]


def schedule_json(s: Schedule) -> dict:
    """A schedule's grid: alphas, sigmas, alpha-bars and SNR in dB (null where infinite)."""
    snr_db = s.snr_db
    return {
        "name": s.name,
        "T": s.T,
        "alphas": _sig(s.alphas),
        "sigmas": _sig(s.sigmas),
        "alpha_bars": _sig(s.alpha_bars),
        "snr_db": [round(v, 3) if math.isfinite(v) else None for v in snr_db.tolist()],
        "terminal_alpha_bar": float(f"{float(s.alpha_bars[-1]):.6g}"),
        "terminal_snr_db": finite_or_none(s.terminal_snr_db(), 3),
    }


def json_response(content: dict, status: int = 200) -> Response:
    """json.dumps directly: FastAPI's encoder walks every float of a large frame list in Python."""
    return Response(json.dumps(content, separators=(",", ":"), allow_nan=False), status, media_type="application/json")
