"""The layers of DESIGN.md, checked by walking every import statement of the source tree.

Both checks read the source with ``ast`` (nothing is imported), so they see imports inside
functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "chemtomo"

ALGORITHMS = {"ptycho", "tomo", "align", "chem", "particles", "resolution", "simulate"}
# DESIGN.md, "Layers": what each top-level part may import besides itself. "" is the package root
# (chemtomo/__init__.py: the version).
ALLOWED = {
    "core": set(),
    "ptycho": {"core", "resolution"},
    "tomo": {"core"},
    "align": {"core", "tomo"},
    "chem": {"core", "tomo"},  # tomo only inside chem.joint_reconstruct (checked below)
    "particles": {"core"},
    "resolution": {"core", "tomo"},
    "simulate": {"core", "tomo", "ptycho"},
    "io": {"", "core"} | ALGORITHMS,
    "pipeline": {"", "core", "io", "report"} | ALGORITHMS,  # pipeline and report share layer 4
    "report": {"", "core", "io", "pipeline"} | ALGORITHMS,
    "viewer": {"", "core", "io", "pipeline", "report"} | ALGORITHMS,  # the napari plugin: presentation, as report
    "cli": {"", "core", "io", "pipeline", "report", "viewer"} | ALGORITHMS,
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _walk(node, in_function=False):
    """Every node below ``node`` with whether it sits inside a function."""
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        yield from _walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _imports(mods):
    """Yield (module, imported module, the import node, whether it sits at module level)."""
    for mod, (f, is_pkg) in mods.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node, in_function in _walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = pkg[:len(pkg) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    targets.append(full if full in mods else target)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t.split(".")[0] == "chemtomo" and t != mod:
                    yield mod, t, node, not in_function


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_import_keeps_to_the_layers():
    mods = _modules()
    # A top-level part not named in DESIGN.md (a plugin entry point, say) counts as the top layer:
    # it may import anything, and no named part may import it.
    bad = []
    for mod, target, node, top_level in _imports(mods):
        src, dst = _part(mod), _part(target)
        if src == dst or src == "" or src not in ALLOWED:
            continue
        if dst not in ALLOWED.get(src, set()):
            bad.append(f"{mod} (line {node.lineno}) imports {target}: {src} may import only {sorted(ALLOWED[src])}")
        elif src == "chem" and dst == "tomo" and top_level:
            bad.append(f"{mod} (line {node.lineno}) imports {target} at module level; chem may import tomo only "
                       "inside joint_reconstruct")
    assert not bad, "\n".join(bad)


def test_no_import_circles_between_modules():
    # Module to module, lazy imports included; a package's __init__ (which gathers its modules'
    # names) is left out, or every package would be a circle with its own modules.
    mods = _modules()
    edges = {m: set() for m, (_, is_pkg) in mods.items() if not is_pkg}
    for mod, target, _, _ in _imports(mods):
        if mod in edges and target in edges:
            edges[mod].add(target)
    # Tarjan's strongly connected components, iteratively
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1; stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1; stack.append(w); on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop(); on.discard(w); comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        circles.append(sorted(comp))
    assert not circles, f"modules that import each other (directly or in a ring): {circles}"
