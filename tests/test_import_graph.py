"""The package's import graph has no loops and points one way: commands -> workflows -> library.

The graph is read from the source (every `import` / `from ... import` of a `safespeak` module, at module
level or inside functions, since a lazy import still couples two modules). Two kinds of statement are
not edges: imports under `if TYPE_CHECKING:` (never run) and imports inside a package `__init__`'s
`__getattr__` (the lazy public API, run only on attribute access after the package has loaded).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import safespeak

PKG_DIR = Path(safespeak.__file__).parent
COMMAND_LAYER = ("safespeak.cli", "safespeak.__main__", "safespeak.commands")
HEAVY = ("torch", "matplotlib", "transformers", "scipy", "soundfile")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG_DIR.rglob("*.py")):
        rel = path.relative_to(PKG_DIR.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(all safespeak modules `name` imports, those imported at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    top: set[str] = set()

    def target(mod: str, names: list[str]) -> list[str]:
        hits = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
        return hits or ([mod] if mod in MODULES else [])

    def visit(node: ast.AST, level: int) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if path.name == "__init__.py" and isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return
        mods: list[str] = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names if a.name.split(".")[0] == "safespeak"]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            if mod.split(".")[0] == "safespeak":
                mods = target(mod, [a.name for a in node.names])
        for m in mods:
            found.add(m)
            if level == 0:
                top.add(m)
        inner = level + isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, 0)
    found.discard(name)
    top.discard(name)
    return found, top


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def _topological(graph: dict[str, set[str]]) -> list[str]:
    done: list[str] = []
    seen: set[str] = set()

    def walk(v: str) -> None:
        if v in seen:
            return
        seen.add(v)
        for w in sorted(graph.get(v, ())):
            walk(w)
        done.append(v)

    for v in sorted(graph):
        walk(v)
    return done  # dependencies first


def test_the_import_graph_has_no_loops() -> None:
    assert len(MODULES) > 40 and "safespeak.commands.score" in MODULES
    loops = _cycles({k: v[0] for k, v in GRAPH.items()})
    assert loops == [], "import loops: " + "; ".join(" <-> ".join(c) for c in loops)


def test_the_loop_finder_finds_loops() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_layers_point_one_way() -> None:
    def is_command(m: str) -> bool:
        return any(m == c or m.startswith(c + ".") for c in COMMAND_LAYER)

    upward = sorted(
        f"{m} -> {d}" for m, (deps, _) in GRAPH.items() if not is_command(m) for d in deps if is_command(d)
    )
    assert upward == [], f"library modules import the command layer: {upward}"
    # command modules stay light: at module level only the command package, errors and constant tables
    light = {"safespeak", "safespeak.errors", "safespeak.commands", "safespeak.commands._common",
             "safespeak.protocols", "safespeak.scorefiles", "safespeak.audiofiles"}  # fmt: skip
    for m, (_, top) in GRAPH.items():
        if m.startswith("safespeak.commands."):
            assert top <= light, f"{m} imports {sorted(top - light)} at module level"


def test_no_library_module_exits_or_prints() -> None:
    offenders = []
    for name, path in MODULES.items():
        if any(name == c or name.startswith(c + ".") for c in COMMAND_LAYER):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            exits = isinstance(node, ast.Raise) and "SystemExit" in ast.dump(node.exc or node)
            calls = isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Name) and node.func.id == "print")
                or (isinstance(node.func, ast.Attribute) and ast.unparse(node.func) == "sys.exit")
            )
            if exits or calls:
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter() -> None:
    order = _topological({k: v[0] for k, v in GRAPH.items()})
    code = (
        "import importlib, json, sys\n"
        "skipped = []\n"
        f"for m in {order!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as exc:  # an optional dependency (extra) not installed here\n"
        "        if (exc.name or '').split('.')[0] == 'safespeak':\n"
        "            raise\n"
        "        skipped.append(m)\n"
        "print(json.dumps(skipped))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(skipped) < len(order) // 4, skipped


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["evaluate", "--help"]])
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from safespeak.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_public_api_loads_lazily_and_evaluate_stays_callable() -> None:
    code = (
        "import sys\n"
        "import safespeak\n"
        "light = not any(m in sys.modules for m in ('numpy', 'torch'))\n"
        "import safespeak.evaluate\n"  # the submodule import rebinds the package attribute
        "from safespeak import EvaluationResult, evaluate\n"
        "print(light, callable(safespeak.evaluate), callable(evaluate), EvaluationResult.__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "EvaluationResult"]
