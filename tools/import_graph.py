"""The import graph of ``course_utils``, read from the code: for the architecture tests and the
picture in docs/ARCHITECTURE.md.

Every ``import`` and ``from ... import`` counts, function-local ones included. Importing
``a.b.c`` from outside the package ``a.b`` also runs ``a.b``'s ``__init__``, so it adds an edge to
``a.b`` too (that is how ``pretrained -> metrics.classifier`` closed a cycle through ``metrics``).

    python tools/import_graph.py            # the edges, the cycles (none) and the layers
    python tools/import_graph.py --png docs/import_graph.png
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "course_utils"
WING = f"{PACKAGE}.course"

# The layers of the picture, bottom to top: each unit (a module, or a package drawn as one box)
# may import only from its own layer or the ones below. The test checks the graph against them.
# Samplers and training know no particular network (they take any callable / nn.Module), so they sit
# below the networks; a network that comes with its own small trainer (tiny CLIP, the VAE) uses
# ``training.fit``.
LAYERS = [
    ("foundations", ["_validation", "_deprecation", "config", "families", "checkpoints", "profiling"]),
    ("maths", ["schedules", "parameterization", "forward", "reverse", "score", "flow_matching", "guidance",
               "oracle"]),
    ("samplers", ["samplers"]),
    ("training", ["distillation", "training", "reflow"]),
    ("data and networks", ["data", "models", "latent"]),
    ("models in use", ["denoisers", "pipeline", "pretrained", "metrics", "viz", "real_models"]),
    ("recipes", ["recipes", "cards", "train"]),
    ("course wing", ["course", "grade"]),
]


def modules(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imported(module: str, path: Path, node: ast.AST, known: dict) -> set[str]:
    """The package modules one import statement names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        if node.level:
            base = package[:len(package) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
    return {n for n in names if n in known or n.split(".")[0] == PACKAGE}


def graph(root: Path = ROOT / PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package, parent packages' ``__init__`` included."""
    known = modules(root)
    edges: dict[str, set[str]] = {}
    for module, path in known.items():
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _imported(module, path, node, known):
                    while name and name not in known:
                        name = name.rpartition(".")[0]
                    parts = name.split(".")
                    for i in range(1, len(parts) + 1):  # the target and every package above it ...
                        parent = ".".join(parts[:i])
                        if parent in known and not (module == parent or module.startswith(parent + ".")):
                            out.add(parent)  # ... that the importing module is not itself inside
        edges[module] = out - {module}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def unit(module: str) -> str:
    """The box a module is drawn in: its first name below the package (``samplers.ddim`` -> ``samplers``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(name: str) -> int:
    for i, (_, units) in enumerate(LAYERS):
        if name in units:
            return i
    raise KeyError(f"{name!r} is in no layer of tools/import_graph.py's LAYERS; add it to one.")


def unit_edges(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports between boxes (within a box left out)."""
    return {(unit(a), unit(b)) for a, bs in edges.items() for b in bs
            if unit(a) != unit(b) and PACKAGE not in (unit(a), unit(b))}


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a box to one in a higher layer (there should be none)."""
    return sorted((a, b) for a, b in unit_edges(edges) if layer_of(b) > layer_of(a))


def draw(edges: dict[str, set[str]], path: Path) -> Path:
    """The boxes by layer, bottom to top, with an arrow for each import between boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = {}
    for y, (_, units) in enumerate(LAYERS):
        for x, name in enumerate(units):
            pos[name] = ((x + 0.5) / len(units) + 0.05 * (y % 2), y)  # staggered: no arrow runs through a box
    fig, ax = plt.subplots(figsize=(13, 8.5))
    for a, b in sorted(unit_edges(edges)):
        if layer_of(b) == 0:  # almost everything imports the foundations: their arrows would hide the rest
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                    arrowprops=dict(arrowstyle="-|>", color="tab:blue", alpha=0.25, lw=0.8,
                                    connectionstyle="arc3,rad=0.08", shrinkA=2, shrinkB=2))
    for name, (x, y) in pos.items():
        wing = name == "course"
        ax.text(x, y, name, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.35", fc="#fde9d9" if wing else "#e8f0fb",
                          ec="tab:orange" if wing else "tab:blue"))
    for y, (label, _) in enumerate(LAYERS):
        ax.text(-0.02, y, label, ha="right", va="center", fontsize=10, color="0.35", style="italic")
    ax.set(xlim=(-0.22, 1.02), ylim=(len(LAYERS) - 0.4, -0.6))
    ax.axis("off")
    ax.set_title("course_utils: who imports whom, read from the code by tools/import_graph.py\n(arrows point at "
                 "what is imported; arrows into the foundations, which nearly every module imports, are left out)",
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="draw the layered graph to this file")
    args = parser.parse_args(argv)
    edges = graph()
    for module in sorted(edges):
        print(f"{module} -> {', '.join(sorted(edges[module])) or '(nothing)'}")
    found, upward = cycles(edges), upward_imports(edges)
    print(f"\ncycles: {found or 'none'}\nupward imports: {upward or 'none'}")
    if args.png:
        print(f"drew {draw(edges, args.png)}")
    return 1 if found or upward else 0


if __name__ == "__main__":
    sys.exit(main())
