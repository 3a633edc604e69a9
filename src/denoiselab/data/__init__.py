"""Data: toy generators (seeds 000, 001, 003 and the usual 2D sets) and user point files."""

from .images import (
    IMAGE_DATASETS,
    PATTERN_KINDS,
    ImageSet,
    load_cifar10,
    load_digits,
    load_idx,
    load_image_data,
    load_image_folder,
    load_npz,
    make_patterns,
    resize_images,
    split,
    split_indices,
)
from .sources import DataError, Normalization, PointSource, load_points_file, make_source
from .toy import GENERATORS, bimodal_1d, checkerboard, circle, eight_gaussians, moons, spiral, swiss_roll

__all__ = [
    "GENERATORS",
    "IMAGE_DATASETS",
    "PATTERN_KINDS",
    "DataError",
    "ImageSet",
    "Normalization",
    "PointSource",
    "bimodal_1d",
    "checkerboard",
    "circle",
    "eight_gaussians",
    "load_cifar10",
    "load_digits",
    "load_idx",
    "load_image_data",
    "load_image_folder",
    "load_npz",
    "load_points_file",
    "make_patterns",
    "make_source",
    "moons",
    "resize_images",
    "spiral",
    "split",
    "split_indices",
    "swiss_roll",
]
