"""Reading a user's points from a .npy or .csv file, checked: what both the point sources
(sources.py) and the label readers (labels.py) build on."""

from __future__ import annotations

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
    lines = None
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr, lines = _load_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"{path}: cannot read as {path.suffix} ({type(exc).__name__}: {exc})") from None
    return check_points(arr, path, lines)


# Where a bad value is, in every message about a user's file: a text file's "line N" as an editor
# shows it (counting from 1, the header and blank lines included); an array's "index i" (from 0,
# as numpy indexes it).
def where_in(i: int, lines=None) -> str:
    """Where row ``i`` of what a file held is: "line N" when ``lines`` (the file's line number of
    each row) is given, else "index i"."""
    return f"index {i}" if lines is None else f"line {lines[i]}"


def _data_lines(path: Path, skip: int) -> list[tuple[int, str]]:
    """The rows np.loadtxt reads, with their line numbers (from 1): after ``skip`` lines, without
    blank lines and '#' comments."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        texts = [(i, text.split("#", 1)[0].strip()) for i, text in enumerate(fh, 1) if i > skip]
    return [(i, text) for i, text in texts if text]


def _first_bad_line(rows: list[tuple[int, str]]) -> str | None:
    """The first row that is not as many numbers as the first: "line 6, column 2: 'x' is not a number"."""
    width = len(rows[0][1].split(",")) if rows else 0
    for i, text in rows:
        cells = text.split(",")
        if len(cells) != width:
            return f"line {i} has {len(cells)} values, line {rows[0][0]} has {width}"
        for j, cell in enumerate(cells, 1):
            try:
                float(cell)
            except ValueError:
                return f"line {i}, column {j}: {cell.strip()!r} is not a number"
    return None


def _load_csv(path: Path) -> tuple[np.ndarray, list[int]]:
    """Numbers separated by commas, after an optional header line (`denoiselab sample --out
    x.csv` writes x1,x2), and the line number of each row; a bad value is named by its line and
    column in the file."""
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
            arr = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=header)
    except ValueError:
        # numpy numbers its rows in more than one way (after the header or not, from 0 or 1,
        # blank lines left out): the file is read again to name the line.
        bad = _first_bad_line(_data_lines(path, header))
        if bad is None:
            raise
        raise ValueError(bad) from None
    return arr, [i for i, _ in _data_lines(path, header)]


def check_points(arr: np.ndarray, path, lines=None) -> np.ndarray:
    """An N x D array of finite numbers with N >= 2, as float32 (1-D input is one column).
    ``lines``: the file's line number of each row, for a text file (``where_in``)."""
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise DataError(f"{path}: expected an N x D array of points with N >= 2, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{path}: contains NaN or infinite values (first at {where_in(bad, lines)})")
    return arr.astype(np.float32)


def read_file_bytes(path: Path) -> bytes:
    """A data file's bytes, or one DataError line saying why not (a folder, no file, unreadable)."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({' '.join(str(exc).split())})") from None


def resolve_data_path(name: str, base: Path | None = None) -> Path:
    p = Path(name).expanduser()
    if not p.is_absolute() and base is not None and not p.exists():
        p = base / p
    return p
