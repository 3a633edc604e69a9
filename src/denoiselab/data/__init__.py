"""Data: toy generators (seeds 000, 001, 003 and the usual 2D sets) and user point files."""

from .sources import DataError, Normalization, PointSource, load_points_file, make_source
from .toy import GENERATORS, bimodal_1d, checkerboard, circle, eight_gaussians, moons, spiral, swiss_roll

__all__ = [
    "GENERATORS",
    "DataError",
    "Normalization",
    "PointSource",
    "bimodal_1d",
    "checkerboard",
    "circle",
    "eight_gaussians",
    "load_points_file",
    "make_source",
    "moons",
    "spiral",
    "swiss_roll",
]
