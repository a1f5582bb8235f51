"""The package's shape: imports only go down the layers, no cycles, no private names across
subpackages, no imports at the bottom of a module, no reference to files users do not have."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ufm"

#: Layer of each top-level subpackage: a module may import its own layer and the ones below.
LAYERS = {
    "_version": 0,
    "core": 0,
    "metrics": 1,
    "data": 1,
    "kernels": 1,
    "nets": 1,
    "hessian": 2,
    "optim": 3,
    "landscape": 4,
    "runs": 5,
    "report": 6,
    "systems": 7,
    "cli": 8,
    "__init__": 9,
    "__main__": 9,
}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            is_pkg = True
        else:
            is_pkg = False
        yield path, ".".join(parts), is_pkg


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str, is_pkg: bool):
    """``(lineno, imported module, names, top_level)`` for every import of ``ufm`` modules."""
    tree = ast.parse(path.read_text())
    package = module if is_pkg else module.rsplit(".", 1)[0]
    top_nodes = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "ufm" or target.startswith("ufm."):
                names = [a.name for a in node.names]
                yield node.lineno, target, names, id(node) in top_nodes
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ufm."):
                    yield node.lineno, a.name, [], id(node) in top_nodes


MODULES = list(_modules())


@pytest.mark.parametrize("path,module,is_pkg", MODULES, ids=[m for _, m, _ in MODULES])
def test_imports_go_down_the_layers(path, module, is_pkg):
    own = LAYERS[_top(module)]
    for line, target, names, _ in _imports(path, module, is_pkg):
        if target == "ufm":  # `from .. import systems` style: the names are subpackages
            tops = names
        else:
            tops = [_top(target)]
        for t in tops:
            assert t in LAYERS, f"{module}:{line} imports unknown part {t!r}"
            assert LAYERS[t] <= own, (
                f"{module}:{line} imports {target} ({t}, layer {LAYERS[t]}) from layer {own}"
            )


@pytest.mark.parametrize("path,module,is_pkg", MODULES, ids=[m for _, m, _ in MODULES])
def test_no_private_names_across_subpackages(path, module, is_pkg):
    own = _top(module)
    for line, target, names, _ in _imports(path, module, is_pkg):
        if target != "ufm" and _top(target) != own:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{module}:{line} imports private {private} from {target}"
            assert not any(
                p.startswith("_") and p not in ("__init__", "_version")
                for p in target.split(".")[1:]
            ), f"{module}:{line} imports {target}"


@pytest.mark.parametrize("path,module,is_pkg", MODULES, ids=[m for _, m, _ in MODULES])
def test_no_imports_at_the_bottom(path, module, is_pkg):
    tree = ast.parse(path.read_text())
    seen_def = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            seen_def = True
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and seen_def:
            pytest.fail(f"{module}:{node.lineno} imports after a definition")


def test_no_import_cycles():
    graph = {}
    for path, module, is_pkg in MODULES:
        deps = set()
        for _, target, names, top_level in _imports(path, module, is_pkg):
            if not top_level:
                continue
            cands = [f"{target}.{n}" for n in names] + [target]
            for c in cands:
                if any(c == m for _, m, _ in MODULES):
                    deps.add(c)
                    break
        graph[module] = deps - {module}
    # a package's __init__ re-exporting its own modules is not a cycle: drop module -> own package
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not m.startswith(d + ".")}
    state = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack + [m, d]))
            if not state.get(d):
                visit(d, stack + [m])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [])


def test_nothing_points_at_files_users_do_not_have():
    pattern = re.compile(r"shared/|\.\./shared")
    for folder in ("ufm", "docs", "notebooks", "experiments", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".toml") and path.is_file():
                text = path.read_text()
                assert not pattern.search(text), f"{path.relative_to(ROOT)} refers to shared/"
    assert not pattern.search((ROOT / "README.md").read_text())
