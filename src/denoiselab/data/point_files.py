"""Reading a user's points from a .npy or .csv file, checked: what both the point sources
(sources.py) and the label readers (labels.py) build on."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError

FILE_EXTENSIONS = (".npy", ".csv")


class DataError(InputError):
    """A data file or data name that cannot be used; the message names it."""


def load_points_file(path: str | Path) -> np.ndarray:
    """Read an N x D float array (D = 1 or 2 or more) from .npy or .csv, checked."""
    path = Path(path)
    if path.suffix.lower() not in FILE_EXTENSIONS:
        raise DataError(f"{path}: unknown extension {path.suffix!r}; expected one of {', '.join(FILE_EXTENSIONS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = _load_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"{path}: cannot read as {path.suffix} ({type(exc).__name__}: {exc})") from None
    return check_points(arr, path)


def _load_csv(path: Path) -> np.ndarray:
    """Numbers separated by commas, after an optional header line (`denoiselab sample --out
    x.csv` writes x1,x2); a bad value is named by its line and column in the file."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    try:
        [float(v) for v in first.split(",")]
        header = 0
    except ValueError:
        header = 1
    try:
        with warnings.catch_warnings():  # numpy warns when the file holds only a header
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=header)
    except ValueError as exc:
        # numpy: "could not convert string 'x' to float64 at row R, column C." (R counts from 0
        # after the skipped header, C from 1)
        found = re.search(r"string (.*) to float\w* at row (\d+), column (\d+)", str(exc))
        if found:
            value, row, col = found.group(1), int(found.group(2)), int(found.group(3))
            raise ValueError(f"line {row + header + 1}, column {col}: {value} is not a number") from None
        raise


def check_points(arr: np.ndarray, path) -> np.ndarray:
    """An N x D array of finite numbers with N >= 2, as float32 (1-D input is one column)."""
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise DataError(f"{path}: expected an N x D array of points with N >= 2, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{path}: contains NaN or infinite values (first at row {bad})")
    return arr.astype(np.float32)


def resolve_data_path(name: str, base: Path | None = None) -> Path:
    p = Path(name).expanduser()
    if not p.is_absolute() and base is not None and not p.exists():
        p = base / p
    return p
