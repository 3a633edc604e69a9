"""Class labels for point data: read them from a user's files and turn them into class indices.

Labels come as integers or as names.  Either way they become indices 0..K-1 with a class name
each: names are sorted alphabetically, integers numerically (so labels 0..K-1 keep their
values and their names are "0".."K-1").  A value that is neither an integer nor a name
(1.5, NaN, an empty cell) is an error, never silently rounded.

Where labels can live (``data.labels`` in a recipe):
  ""            the ``y`` array of an .npz, or a CSV column headed ``label`` or ``class``
  "NAME" / "2"  a CSV column by header name or 0-based index
  "FILE"        a .npy, .txt or .csv file with one label per point
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .point_files import DataError, check_points, load_points_file, resolve_data_path, where_in

LABEL_HEADERS = ("label", "class")
LABEL_FILE_EXTENSIONS = (".npy", ".txt", ".csv")


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_labels(values, where: str, lines=None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer or name labels -> (indices 0..K-1 as int64, class names); ``where`` names the
    source, ``lines`` the file's line number of each label when it is a text file (a bad label
    is then named by its line, else by its index: point_files.where_in)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{where}: expected one label per point (a 1-D list), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{where}: no labels")
    if np.issubdtype(arr.dtype, np.bool_):
        arr = arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        ints = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: labels must be integers or names, got {float(arr[i])!r} at {where_in(i, lines)}")
        ints = arr.astype(np.int64)
    elif arr.dtype.kind in "US" or arr.dtype == object:
        texts = [str(v.decode() if isinstance(v, bytes) else v).strip() for v in arr.tolist()]
        parsed = [_as_int(t) for t in texts]
        if all(p is not None for p in parsed):
            ints = np.asarray(parsed, dtype=np.int64)
        else:
            for i, t in enumerate(texts):
                if not t or (_is_number(t) and parsed[i] is None):
                    raise DataError(f"{where}: labels must be integers or names, got {t!r} at {where_in(i, lines)}")
            names, index = np.unique(np.asarray(texts), return_inverse=True)
            return index.astype(np.int64), tuple(str(n) for n in names)
    else:
        raise DataError(f"{where}: labels must be integers or names, got dtype {arr.dtype}")
    if (ints < 0).any():
        i = int(np.argmax(ints < 0))
        raise DataError(f"{where}: labels must be >= 0, got {int(ints[i])} at {where_in(i, lines)}")
    values_, index = np.unique(ints, return_inverse=True)
    return index.astype(np.int64), tuple(str(v) for v in values_)


def _read_csv_rows(path: Path) -> tuple[list[list[str]], list[int]]:
    """The rows of a CSV that hold anything (cells stripped), and the line of each (from 1, as an
    editor shows it: blank lines counted, not returned)."""
    rows, lines = [], []
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            for row in reader:
                if any(c.strip() for c in row):
                    rows.append([c.strip() for c in row])
                    lines.append(reader.line_num)  # the row's last line: a quoted cell may span lines
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as .csv ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise DataError(f"{path}: empty file")
    return rows, lines


def csv_label_header(path: Path) -> str | None:
    """The header name of a CSV's label column (``label`` or ``class``), if it has one."""
    try:
        with open(path, newline="") as fh:
            first = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None  # load_points_file reports the unreadable file
    names = [c.strip().lower() for c in first]
    return next((first[i].strip() for i, c in enumerate(names) if c in LABEL_HEADERS), None)


def _csv_with_label_column(path: Path, column: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Split a CSV into its point columns (floats) and its label column (strings), with the line
    of each point in the file."""
    rows, lines = _read_csv_rows(path)
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        i = next(i for i, r in enumerate(rows) if len(r) != width)
        raise DataError(f"{path}: line {lines[i]} has {len(rows[i])} values, line {lines[0]} has {width}")
    idx = _as_int(column)
    header = [c.lower() for c in rows[0]]
    if idx is None:
        if column.lower() not in header:
            raise DataError(f"{path}: no column named {column!r} (data.labels); the header is {', '.join(rows[0])}")
        idx = header.index(column.lower())
    elif not -width <= idx < width:
        raise DataError(f"{path}: data.labels column {idx} is out of range for {width} columns")
    idx %= width
    if width < 2:
        raise DataError(f"{path}: a label column needs at least one point column beside it")
    others = [j for j in range(width) if j != idx]
    has_header = any(not _is_number(rows[0][j]) for j in others)
    body, lines = (rows[1:], lines[1:]) if has_header else (rows, lines)
    if len(body) < 2:
        raise DataError(f"{path}: expected at least 2 rows of points")
    try:
        points = np.array([[float(r[j]) for j in others] for r in body], dtype=np.float64)
    except ValueError:
        i, j = next((i, j) for i, r in enumerate(body) for j in others if not _is_number(r[j]))
        raise DataError(f"{path}: line {lines[i]}, column {j + 1}: {body[i][j]!r} is not a number") from None
    labels = np.array([r[idx] for r in body], dtype=object)
    return points, labels, lines


def read_labels_file(path: Path) -> tuple[np.ndarray, list[int] | None]:
    """One label per point from .npy, or .txt/.csv with one label per line (a header line
    ``label``/``class`` is skipped); and for a text file the line of each label."""
    if path.suffix.lower() not in LABEL_FILE_EXTENSIONS:
        raise DataError(f"{path}: unknown labels file type {path.suffix!r}; expected one of {', '.join(LABEL_FILE_EXTENSIONS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such labels file")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
            raise DataError(f"{path}: cannot read as .npy ({type(exc).__name__}: {exc})") from None
        return (arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr), None
    rows, lines = _read_csv_rows(path)
    if any(len(r) != 1 for r in rows):
        i = next(i for i, r in enumerate(rows) if len(r) != 1)
        raise DataError(f"{path}: expected one label per line, line {lines[i]} has {len(rows[i])} values")
    values = [r[0] for r in rows]
    if values[0].lower() in LABEL_HEADERS:
        values, lines = values[1:], lines[1:]
    return np.array(values, dtype=object), lines


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: expected an array named x (the points), found {', '.join(arrays) or 'none'}")
    return arrays["x"], arrays.get("y"), arrays.get("class_names")


def load_labelled_points(
    name: str, labels: str = "", base: Path | None = None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Points from a .npy/.csv/.npz file and their class labels (None when it has none)."""
    path = resolve_data_path(name, base)
    raw_labels, names, lines = None, None, None
    where = f"{path}"
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        x, raw_labels, names = _load_npz(path)
        points = check_points(np.atleast_1d(x), path)
        where = f"{path} (y)"
    elif path.suffix.lower() == ".csv" and labels and Path(labels).suffix.lower() not in LABEL_FILE_EXTENSIONS:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        pts, raw_labels, lines = _csv_with_label_column(path, labels)
        points = check_points(pts, path, lines)
        where = f"{path} (column {labels})"
    elif path.suffix.lower() == ".csv" and not labels and path.is_file() and (header := csv_label_header(path)):
        pts, raw_labels, lines = _csv_with_label_column(path, header)
        points = check_points(pts, path, lines)
        where = f"{path} (column {header})"
    else:
        if labels and Path(labels).suffix.lower() not in LABEL_FILE_EXTENSIONS:
            raise DataError(f"data.labels: {labels!r} names a CSV column, but {path} is not a .csv file; give a labels file instead")
        points = load_points_file(path)
    if labels and Path(labels).suffix.lower() in LABEL_FILE_EXTENSIONS:
        label_path = resolve_data_path(labels, base)
        (raw_labels, lines), where = read_labels_file(label_path), f"{label_path}"
    if raw_labels is None:
        return points, None, ()
    index, class_names = parse_labels(raw_labels, where, lines)
    if len(index) != len(points):
        raise DataError(f"{where}: {len(index)} labels for {len(points)} points; expected one label per point")
    if names is not None:
        class_names = _npz_class_names(names, index, class_names, path)
    return points, index, class_names


def _npz_class_names(names: np.ndarray, index: np.ndarray, parsed: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """An .npz's class_names[i] names integer label i; keep only the classes present."""
    names = [str(n) for n in np.asarray(names).reshape(-1).tolist()]
    try:
        values = [int(p) for p in parsed]
    except ValueError:
        raise DataError(f"{path}: class_names needs integer labels in y, got names") from None
    if max(values) >= len(names):
        raise DataError(f"{path}: label {max(values)} has no entry in class_names ({len(names)} names)")
    return tuple(names[v] for v in values)
