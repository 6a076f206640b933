"""Old import paths that keep working for one version (0.2), with a ``DeprecationWarning``.

The README tells teachers to pin a tag, so a notebook written against 0.1 must still import. Two
kinds of move are covered, each listed once here (``tests/test_deprecation.py`` imports every old path):

- a module or package that moved (``MOVED_MODULES``): ``install_finder`` (run by ``course_utils``'s
  ``__init__``) makes ``import old`` give the new module itself, submodules included, so patching
  either name patches both;
- names that moved out of a module (``MOVED_NAMES``): the module's ``__getattr__`` is
  ``moved_names(__name__)``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

REMOVED_IN = "0.3"

MOVED_MODULES: dict[str, str] = {
    "course_utils.distributed": "course_utils.training.distributed",
    **{f"course_utils.{name}": f"course_utils.course.{name}"
       for name in ("evaluation", "exercises", "failures", "pixel_search", "production", "quiz", "quiz_questions",
                    "speed", "widgets")},
}

_CONVERSIONS = ("PREDICTION_TYPES", "x0_from_epsilon", "epsilon_from_x0", "v_from_epsilon_x0", "x0_from_v",
                "epsilon_from_v", "predict_x0_and_epsilon", "convert_prediction", "clamp_x0_prediction")
MOVED_NAMES: dict[str, dict[str, str]] = {
    "course_utils.reverse": {name: "course_utils.parameterization" for name in _CONVERSIONS},
    "course_utils.flow_matching": {
        **{name: "course_utils.reflow" for name in ("reflow_pairs", "paired_flow_loss", "fit_pairs")},
        **{name: "course_utils.metrics.distances" for name in ("sliced_wasserstein", "straightness")},
    },
    "course_utils.course.pixel_search": {name: "course_utils.metrics.distances"
                                         for name in ("nearest_data", "nearest_data_distance", "real_vs_real_distance")},
    "course_utils.course.failures": {"pairwise_diversity": "course_utils.metrics.distances"},
}


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} moved to {new}; the old path is removed in course_utils {REMOVED_IN}.",
                  DeprecationWarning, stacklevel=stacklevel + 1)


def new_module_name(name: str) -> str | None:
    """Where module ``name`` lives now, if it (or a package above it) moved; else None."""
    for old, new in MOVED_MODULES.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and hands back the module it moved to (not a copy)."""

    def __init__(self):
        self._specs: dict[str, object] = {}

    def find_spec(self, fullname, path, target=None):
        if new_module_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = new_module_name(spec.name)
        _warn(spec.name, new, stacklevel=2)
        module = importlib.import_module(new)
        self._specs[module.__name__] = module.__spec__  # the import system sets __spec__ to the old name's
        return module

    def exec_module(self, module):
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)  # already executed: restore it


def install_finder() -> None:
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())


def moved_names(module: str):
    """A module ``__getattr__`` that finds each name listed for ``module`` in ``MOVED_NAMES`` where it went."""
    names = MOVED_NAMES[module]

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", f"{names[name]}.{name}", stacklevel=2)  # the line that used the old name
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
