"""The package's shape, checked from its code (tools/import_graph.py): no import cycles, layers that
only import downwards, a course wing the core never imports, and files and functions a reader can
hold in their head."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import import_graph  # noqa: E402

CORE_MAX_LINES = 300
WING = "course_utils.course"


@pytest.fixture(scope="module")
def edges():
    return import_graph.graph()


def test_no_import_cycles_function_local_imports_included(edges):
    assert import_graph.cycles(edges) == []


def test_the_graph_sees_a_cycle_closed_by_a_function_local_import_or_a_parent_package(tmp_path):
    pkg = tmp_path / "course_utils"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from . import a\n\ndef g():\n    return a\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import c\n")
    (pkg / "sub" / "inner.py").write_text("")
    (pkg / "c.py").write_text("from .sub.inner import x\n")  # runs sub/__init__, which imports c
    found = import_graph.cycles(import_graph.graph(pkg))
    assert sorted(found) == [["course_utils.a", "course_utils.b"], ["course_utils.c", "course_utils.sub"]]


def test_every_module_sits_in_a_layer_and_imports_only_its_own_or_lower_layers(edges):
    for module in edges:
        if module != "course_utils":
            import_graph.layer_of(import_graph.unit(module))  # raises for a module in no layer
    assert import_graph.upward_imports(edges) == []


def test_no_core_module_imports_the_course_wing(edges):
    core = {m: out for m, out in edges.items() if not (m == WING or m.startswith(WING + "."))}
    offenders = {m: sorted(o for o in out if o == WING or o.startswith(WING + ".")) for m, out in core.items()}
    assert {m: o for m, o in offenders.items() if o} == {}


def test_every_core_module_is_at_most_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "course_utils").rglob("*.py")
            if "course" not in p.relative_to(ROOT / "course_utils").parts[:1]
            and (n := len(p.read_text().splitlines())) > CORE_MAX_LINES}
    assert long == {}


def _code_lines(path: Path, qualname: str) -> int:
    """Lines of a function's body, its docstring left out."""
    tree = ast.parse(path.read_text())
    node = tree
    for name in qualname.split("."):
        node = next(n for n in ast.iter_child_nodes(node)
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name)
    body = node.body[1:] if ast.get_docstring(node) else node.body
    return body[-1].end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("path, qualname, limit", [
    ("course_utils/training/loop.py", "train", 60),
    ("course_utils/pipeline.py", "DiffusionModel.sample", 40),
])
def test_the_training_loop_and_the_sampling_entry_point_read_top_to_bottom(path, qualname, limit):
    assert _code_lines(ROOT / path, qualname) <= limit
