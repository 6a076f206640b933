"""Old import paths (0.1) keep working until 0.3, each with a DeprecationWarning that names the new
path: every moved module and every moved name listed in course_utils._deprecation."""

import importlib
import subprocess
import sys

import pytest

from course_utils import _deprecation

OLD_MODULES = sorted(_deprecation.MOVED_MODULES)
OLD_NAMES = sorted((module, name) for module, names in _deprecation.MOVED_NAMES.items() for name in names)


@pytest.mark.parametrize("old", OLD_MODULES)
def test_a_moved_module_imports_from_its_old_path_as_the_same_module(old):
    """In a fresh interpreter, so that the first import (the one that warns) is this one."""
    new = _deprecation.MOVED_MODULES[old]
    code = (f"import warnings, importlib\nwarnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
            f"warnings.simplefilter('ignore', DeprecationWarning)\n"
            f"print(importlib.import_module({old!r}) is importlib.import_module({new!r}))\n"
            f"print(importlib.import_module({new!r}).__spec__.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"warned: {old} moved to {new}; the old path is removed in course_utils 0.3."
    assert out[1:] == ["True", new]  # one module under two names; its own spec kept


def test_a_submodule_of_a_moved_package_is_the_moved_submodule():
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("course_utils.exercises.nb03")
    assert old is importlib.import_module("course_utils.course.exercises.nb03")


@pytest.mark.parametrize("module, name", OLD_NAMES)
def test_a_moved_name_is_found_through_its_old_module_with_a_warning(module, name):
    new_module = _deprecation.MOVED_NAMES[module][name]
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} moved to {new_module}\.{name}"):
        value = getattr(importlib.import_module(module), name)
    assert value is getattr(importlib.import_module(new_module), name)


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        importlib.import_module("course_utils.reverse").no_such_name


def test_renamed_course_names_warn():
    from course_utils.course import speed
    from course_utils.course.widgets import SamplerExplorer

    with pytest.warns(DeprecationWarning, match="speed.ROWS"):
        assert speed.FAMILIES is speed.ROWS
    with pytest.warns(DeprecationWarning, match="rows="):
        assert SamplerExplorer(families=("DDIM",)).rows == ["DDIM"]
