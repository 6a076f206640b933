"""Data sets that need no download: digits, procedural shapes with captions, 2-D toys.

- ``digits``: scikit-learn's 1,797 handwritten digits (they ship inside scikit-learn), as
  ``(N, 1, 16, 16)`` tensors in [-1, 1]; and a dark and a bright copy of each, as two classes.
- ``shapes``: a procedural, seed-deterministic set of ``(N, 3, 32, 32)`` images of one coloured
  shape on a plain background, each with a caption ("a red circle on a blue background").
- ``toy2d``: two moons, a swiss roll and a Gaussian mixture, as ``(N, 2)`` point clouds.
- ``mnist``: MNIST / Fashion-MNIST for online users (Colab); optional, never downloaded by default.
"""

from .digits import load_dark_and_bright_digits, load_digits
from .mnist import load_mnist, read_idx
from .shapes import BACKGROUNDS, COLORS, SHAPES, ShapesDataset, caption, make_shapes, parse_caption
from .toy2d import TOY_DATASETS, gaussian_mixture_params, make_toy2d

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "SHAPES",
    "TOY_DATASETS",
    "ShapesDataset",
    "caption",
    "gaussian_mixture_params",
    "load_dark_and_bright_digits",
    "load_digits",
    "load_mnist",
    "make_shapes",
    "parse_caption",
    "make_toy2d",
    "read_idx",
]
