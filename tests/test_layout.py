"""The house's map, kept true: which wing of `src/polytrack` may import which, no import
cycles, wings that cost nothing to enter, and no public name hidden by a module.

Every module is read with `ast`, nothing is imported, and every import counts: at module
level, inside functions, and under `if TYPE_CHECKING:`. A lazy import inside a function
does not make an upward import right, it only hides it (see STYLE.md: "move the shared
piece down"). The checker takes a source root, so the tests at the end plant violations
in a throwaway package and prove that each rule fails, naming the files.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import attrs
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "polytrack"

# The base layer: modules at the package root that everything may import.
BASE = frozenset(
    {
        "errors",
        "models",
        "settings",
        "_convert",
        "redact",
        "_text",
        "_version",
        "_speedups",
        "_forkgate",
        "_names",
        "_client_config",
    }
)
# The face: the run and the module-level API over it, at the package root.
FACE = frozenset({"run", "ranks", "artifacts", "tracking", "_state", "_api", "_display"})

# What the readers and everything above them may use.
_READERS_MAY = frozenset({"base", "store", "capture", "spec", "media", "face", "history"})
# Which wings a wing's modules may import, besides its own. Lowest first; read with the
# map in STYLE.md (whose `ui/` is built as `dashboard/`, see below).
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    "base": frozenset(),
    "store": frozenset({"base"}),
    "capture": frozenset({"base", "store"}),
    "sync": frozenset({"base", "store"}),
    "spec": frozenset({"base"}),
    # store: the local runner and the tuners read trials' statuses and outputs back.
    "launch": frozenset({"base", "spec", "store"}),
    "media": frozenset({"base", "store"}),  # encoders, below the run
    "face": frozenset({"base", "store", "capture", "sync", "media"}),
    "history": _READERS_MAY - {"history"},
    # Like the CLI, above the rest: they use the public API as a user would.
    "integrations": _READERS_MAY | {"package"},
    "importers": _READERS_MAY | {"package"},
    # `polytrack.tracking.contrib`: Polyaxon's callback names, built on the integrations.
    "contrib": _READERS_MAY | {"integrations", "package"},
    # The dashboard (`polytrack ui`): not `ui/`, which would shadow the `polytrack.ui()`
    # function once imported (a submodule import sets the package attribute).
    "dashboard": _READERS_MAY | {"package"},
    "cli": _READERS_MAY | {"sync", "launch", "integrations", "importers", "dashboard", "package"},
    # `polytrack/__init__.py`: re-exports, imported lazily (its imports are type-only).
    "package": _READERS_MAY | {"sync", "dashboard", "integrations", "importers"},
}

# The wings that are folders (the others are groups of root modules, or the package).
FOLDERS = frozenset(MAY_IMPORT) - {"base", "face", "package", "contrib"}

# Packages whose `__init__.py` is a docstring and nothing else: `init()` imports one module
# of `sync` and `store` each, and must not pay for their siblings (numpy, SQLite, HTTP).
EMPTY_PACKAGES = frozenset(
    {
        "polytrack.capture",
        "polytrack.history",
        "polytrack.launch",
        "polytrack.media",
        "polytrack.store",
        "polytrack.sync",
        "polytrack.sync.backends",
    }
)


@attrs.frozen
class Import:
    """One import statement's target, resolved to a module of the tree."""

    source: str  # the importing module's dotted name
    target: str  # the imported module's dotted name
    line: int


@attrs.frozen
class Tree:
    """The modules of a source root (`.py`, and `.pyi` for the C extension) by dotted name."""

    root: Path
    files: Mapping[str, Path]
    shown_from: Path  # messages name files relative to this folder

    @classmethod
    def read(cls, root: Path, *, shown_from: Path | None = None) -> Tree:
        files: dict[str, Path] = {}
        for path in sorted(root.rglob("*.py*")):
            if path.suffix not in (".py", ".pyi"):
                continue
            parts = (root.name, *path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if path.suffix == ".py" or ".".join(parts) not in files:
                files[".".join(parts)] = path
        return cls(root, files, shown_from or root.parent)

    def where(self, module: str) -> str:
        """The module's file as messages name it (`src/polytrack/store/local.py`)."""
        return self.files[module].relative_to(self.shown_from).as_posix()

    def imports(self) -> Iterator[Import]:
        """Every import of a module of this tree, by every module of it."""
        top = self.root.name
        for module, path in self.files.items():
            if path.suffix != ".py":
                continue
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            nodes = ast.walk(ast.parse(path.read_text(), str(path)))  # breadth first
            for node in sorted(nodes, key=lambda node: getattr(node, "lineno", 0)):
                for target in self._targets(node, package):
                    if target == top or target.startswith(top + "."):
                        line = node.lineno
                        yield Import(module, self._resolve(target, module, line), line)

    def _targets(self, node: ast.AST, package: str) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if not isinstance(node, ast.ImportFrom):
            return []
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        # `from a import b` imports the module a.b when there is one, else a name of a.
        return [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.files else base
            for alias in node.names
        ]

    def _resolve(self, target: str, module: str, line: int) -> str:
        if target not in self.files:
            raise AssertionError(
                f"{self.where(module)}:{line} imports {target}, which is no module "
                f"of {self.root.name}"
            )
        return target


def wing(module: str) -> str | None:
    """The wing a dotted module name belongs to, or None when it is off the map."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    name = parts[1]
    if parts[1:3] == ["tracking", "contrib"]:  # Polyaxon's callbacks, over the integrations
        return "contrib"
    if name in BASE:
        return "base"
    if name in FACE:
        return "face"
    if name == "__main__":
        return "cli"
    if name in FOLDERS:  # the wing's package, or a module inside its folder
        return name
    return None


def layering_violations(tree: Tree) -> list[str]:
    """Each import that points somewhere the map does not allow, as `file:line` text."""
    found = []
    for module in tree.files:
        if wing(module) is None:
            found.append(
                f"{tree.where(module)} is on no wing of the map: place it in tests/test_layout.py"
            )
    for imp in tree.imports():
        source, target = wing(imp.source), wing(imp.target)
        if source is None or target is None or source == target:
            continue
        if target not in MAY_IMPORT[source]:
            allowed = ", ".join(sorted({source} | MAY_IMPORT[source]))
            found.append(
                f"{tree.where(imp.source)}:{imp.line} imports {imp.target}: the {source} wing "
                f"may import only {allowed}, not {target}"
            )
    return found


def import_cycles(tree: Tree) -> list[str]:
    """One message per strongly connected group of modules, naming two files that close
    a cycle (`a imports b, and b leads back to a`) and the whole path."""
    graph: dict[str, dict[str, int]] = {module: {} for module in tree.files}
    for imp in tree.imports():
        if imp.target != imp.source:
            graph[imp.source].setdefault(imp.target, imp.line)
    found = []
    for group in _strongly_connected(graph):
        start = min(group)
        path = _path_back(graph, group, start)
        first, second = path[0], path[1]
        chain = " -> ".join([*path, start])
        found.append(
            f"import cycle: {tree.where(first)}:{graph[first][second]} imports {second}, and "
            f"{tree.where(second)} leads back to it ({chain})"
        )
    return found


def _strongly_connected(graph: Mapping[str, Mapping[str, int]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; only the groups of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def _path_back(graph: Mapping[str, Mapping[str, int]], group: set[str], start: str) -> list[str]:
    """The shortest import path from `start` back to itself inside `group` (BFS)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in group:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a cycle with no path back")  # pragma: no cover


def busy_package_inits(tree: Tree) -> list[str]:
    """Packages meant to cost nothing whose `__init__.py` holds more than a docstring."""
    found = []
    for package in sorted(EMPTY_PACKAGES & tree.files.keys()):
        body = ast.parse(tree.files[package].read_text()).body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        if body:
            found.append(
                f"{tree.where(package)}:{body[0].lineno}: this package's __init__ must be a "
                "docstring only, so importing one of its modules costs only that module"
            )
    return found


def shadowed_public_names(tree: Tree) -> list[str]:
    """Names in `polytrack.__all__` that are also modules at the package's root: importing
    the module would replace the public function on the package (`polytrack.compare`)."""
    top = tree.root.name
    init = ast.parse(tree.files[top].read_text())
    exported: list[str] = []
    for node in init.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = list(ast.literal_eval(node.value))
    return [
        f"polytrack.{name} is a public name and also {tree.where(f'{top}.{name}')}: "
        "importing the module would replace the name on the package"
        for name in exported
        if f"{top}.{name}" in tree.files
    ]


# -- the real tree -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree.read(SRC, shown_from=SRC.parents[1])


@pytest.mark.parametrize(
    "check",
    [layering_violations, import_cycles, busy_package_inits, shadowed_public_names],
    ids=["layering", "cycles", "empty-wing-inits", "shadowed-names"],
)
def test_the_tree_keeps_the_map(tree: Tree, check: Callable[[Tree], list[str]]) -> None:
    """Every module is on the map and imports only the wings below its own; no import
    cycle; the wings' `__init__` files are docstrings; no public name is a root module."""
    found = check(tree)
    assert not found, "\n".join(found)


def test_the_store_the_sync_engine_and_the_readers_have_their_wings(tree: Tree) -> None:
    """The moves this layout made stay made: the store, the sync engine and its backends,
    and the readers live in their wings (an old root module coming back is off the map)."""
    for module in (
        "polytrack.store.journal", "polytrack.store.writer", "polytrack.store.reader",
        "polytrack.store.tail", "polytrack.store.blobs", "polytrack.store.index",
        "polytrack.store.local", "polytrack.store.query", "polytrack.store.liveness",
        "polytrack.sync.engine", "polytrack.sync.worker", "polytrack.sync.backends.base",
        "polytrack.sync.backends.home", "polytrack.history.runs",
        "polytrack.history.compare", "polytrack.history.lineage",
        "polytrack.history.reproduce", "polytrack.history.reproduce_spec",
    ):  # fmt: skip
        assert module in tree.files, module


@pytest.mark.slow
def test_a_run_loads_only_the_modules_it_uses(tmp_path: Path) -> None:
    """`init()`, a log call and `finish()` load the writer's side of the store and nothing of
    the readers, the index, the sync engine or the backends (nor numpy, SQLite, requests):
    the wings' empty `__init__` files are what keep it so."""
    code = (
        "import sys, polytrack\n"
        "run = polytrack.init(project='p', capture=False)\n"
        "run.log_metrics({'loss': 0.5}, step=0)\n"
        "run.finish()\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    # The environment conftest prepared: its own home, cache and (missing) config file, no
    # backend; so the user's config cannot start a sync here.
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(completed.stdout.split())
    assert {"polytrack.store.writer", "polytrack.store.journal"} <= loaded
    heavy = {"numpy", "sqlite3", "requests", "polytrack.store.index", "polytrack.store.local"}
    unwanted = loaded & heavy
    unwanted |= {m for m in loaded if m.startswith(("polytrack.history", "polytrack.sync"))}
    assert not unwanted, f"a run loaded {sorted(unwanted)}"


# -- the checker fails where it should ------------------------------------------------------


def _plant(root: Path, files: Mapping[str, str]) -> Tree:
    """A throwaway `polytrack` package under `root` with the given files (path -> source)."""
    package = root / "polytrack"
    for name, source in {"__init__.py": "__all__ = ['compare']\n", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)
    return Tree.read(package)


def test_an_upward_import_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    """The store importing a reader, even lazily inside a function, fails the map and the
    message names the file, the line and the rule."""
    tree = _plant(
        tmp_path,
        {
            "store/__init__.py": '"""The store."""\n',
            "store/local.py": "def f():\n    from polytrack.history.runs import get_run\n",
            "history/__init__.py": '"""Readers."""\n',
            "history/runs.py": "from polytrack.store.local import f\n",
            "errors.py": "",
        },
    )
    assert layering_violations(tree) == [
        "polytrack/store/local.py:2 imports polytrack.history.runs: the store wing may "
        "import only base, store, not history"
    ]


def test_the_sync_wing_may_not_read_history_or_the_run(tmp_path: Path) -> None:
    """The sync engine importing the run or a reader, also type-only, breaks the map."""
    tree = _plant(
        tmp_path,
        {
            "sync/engine.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from polytrack.run import Run\n"
                "from polytrack import _api\n"
            ),
            "run.py": "",
            "_api.py": "",
        },
    )
    assert [v.split(":")[:2] for v in layering_violations(tree)] == [
        ["polytrack/sync/engine.py", "3 imports polytrack.run"],
        ["polytrack/sync/engine.py", "4 imports polytrack._api"],
    ]


def test_a_module_off_the_map_is_named(tmp_path: Path) -> None:
    """A new root module or folder must be placed on the map before it lands."""
    tree = _plant(tmp_path, {"gadgets.py": "", "widgets/thing.py": ""})
    assert layering_violations(tree) == [
        "polytrack/gadgets.py is on no wing of the map: place it in tests/test_layout.py",
        "polytrack/widgets/thing.py is on no wing of the map: place it in tests/test_layout.py",
    ]


def test_an_import_cycle_names_both_files(tmp_path: Path) -> None:
    """Two modules of one wing importing each other (one of them inside a function) are
    reported as a cycle naming both files."""
    tree = _plant(
        tmp_path,
        {
            "store/a.py": "from polytrack.store import b\n",
            "store/b.py": "def f():\n    import polytrack.store.a\n",
        },
    )
    assert import_cycles(tree) == [
        "import cycle: polytrack/store/a.py:1 imports polytrack.store.b, and "
        "polytrack/store/b.py leads back to it (polytrack.store.a -> polytrack.store.b -> "
        "polytrack.store.a)"
    ]


def test_a_longer_cycle_is_reported_once_with_its_path(tmp_path: Path) -> None:
    """A cycle through three modules is one message with the whole path; a module that
    only imports into the cycle is not part of it."""
    tree = _plant(
        tmp_path,
        {
            "capture/a.py": "import polytrack.capture.b\n",
            "capture/b.py": "from polytrack.capture.c import x\n",
            "capture/c.py": "x = 1\nfrom polytrack.capture import a\n",
            "capture/d.py": "import polytrack.capture.a\n",
        },
    )
    assert import_cycles(tree) == [
        "import cycle: polytrack/capture/a.py:1 imports polytrack.capture.b, and "
        "polytrack/capture/b.py leads back to it (polytrack.capture.a -> polytrack.capture.b "
        "-> polytrack.capture.c -> polytrack.capture.a)"
    ]


def test_an_import_of_a_missing_module_fails_loudly(tmp_path: Path) -> None:
    """An import naming no module of the tree (a moved module left behind) is an error."""
    tree = _plant(tmp_path, {"run.py": "from polytrack.gone import read\n"})
    with pytest.raises(AssertionError, match=r"polytrack/run.py:1 imports polytrack.gone,"):
        list(tree.imports())


def test_a_busy_wing_init_and_a_shadowed_name_are_named(tmp_path: Path) -> None:
    """A wing whose `__init__` imports its modules, and a root module named like a public
    function, are both reported."""
    tree = _plant(
        tmp_path,
        {
            "sync/__init__.py": '"""Sync."""\nfrom polytrack.sync.engine import RunSync\n',
            "sync/engine.py": "RunSync = object\n",
            "compare.py": "",
        },
    )
    assert busy_package_inits(tree) == [
        "polytrack/sync/__init__.py:2: this package's __init__ must be a docstring only, so "
        "importing one of its modules costs only that module"
    ]
    assert shadowed_public_names(tree) == [
        "polytrack.compare is a public name and also polytrack/compare.py: importing the "
        "module would replace the name on the package"
    ]
