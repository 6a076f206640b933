"""Old import paths that keep working for one version (0.2), with a ``DeprecationWarning``.

The README tells teachers to pin a tag, so a notebook written against 0.1 must still import. Two
kinds of move are covered, each listed once here (the test of old paths reads these tables):

- a whole module that moved (``MOVED_MODULES``): its old file calls ``alias_module(__name__)``, and
  the old module *is* the new one, so patching either patches both;
- names that moved out of a module that stays (``MOVED_NAMES``): the module's ``__getattr__`` is
  ``moved_names(__name__)``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

REMOVED_IN = "0.3"

MOVED_MODULES: dict[str, str] = {
    "course_utils.distributed": "course_utils.training.distributed",
}

_CONVERSIONS = ("PREDICTION_TYPES", "x0_from_epsilon", "epsilon_from_x0", "v_from_epsilon_x0", "x0_from_v",
                "epsilon_from_v", "predict_x0_and_epsilon", "convert_prediction", "clamp_x0_prediction")
MOVED_NAMES: dict[str, dict[str, str]] = {
    "course_utils.reverse": {name: "course_utils.parameterization" for name in _CONVERSIONS},
    "course_utils.flow_matching": {
        **{name: "course_utils.reflow" for name in ("reflow_pairs", "paired_flow_loss", "fit_pairs")},
        **{name: "course_utils.metrics.distances" for name in ("sliced_wasserstein", "straightness")},
    },
    "course_utils.pixel_search": {name: "course_utils.metrics.distances"
                                  for name in ("nearest_data", "nearest_data_distance", "real_vs_real_distance")},
    "course_utils.failures": {"pairwise_diversity": "course_utils.metrics.distances"},
}


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} moved to {new}; the old path is removed in course_utils {REMOVED_IN}.",
                  DeprecationWarning, stacklevel=stacklevel + 1)


def alias_module(old: str) -> None:
    """Make ``import old`` give the module it moved to, with a warning. Called from the old module's file."""
    new = MOVED_MODULES[old]
    _warn(old, new, stacklevel=2)  # points at the old module's file; the import machinery lies above it
    sys.modules[old] = importlib.import_module(new)


def moved_names(module: str):
    """A module ``__getattr__`` that finds each name listed for ``module`` in ``MOVED_NAMES`` where it went."""
    names = MOVED_NAMES[module]

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", f"{names[name]}.{name}", stacklevel=2)  # the line that used the old name
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
