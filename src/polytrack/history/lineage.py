"""Lineage: which runs consumed or produced a dataset, an artifact or a model, and how
runs connect through them, upstream and downstream, to any depth.

Every data ref, artifact and model is a node keyed by its content hash (`sha256:<hex>`):
the same bytes logged by two runs under two names are one node. A run links to a node as
a consumer (role "input") or a producer ("output"), and to another run it reproduces.
Everything is answered from the store's index (`run_refs`, `run_links`), which is filled
from the runs' journals, so a lineage query reads no run files.

Every edge of a `LineageGraph` points downstream, the way data flows:

| edge                 | relation     | means                                   |
| -------------------- | ------------ | --------------------------------------- |
| node -> run          | `input`      | the run consumed the node               |
| run -> node          | `output`     | the run produced the node               |
| run A -> run B       | `reproduces` | B reproduces A                          |

The module is not called `lineage`: `polytrack.lineage` is the function, and a submodule
of that name would replace it on the package as soon as anything imported the submodule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from attrs import frozen

from polytrack.errors import AmbiguousRunError, InvalidInputError, RunNotFoundError
from polytrack.history import display
from polytrack.history.runs import RunView
from polytrack.models import RunInfo
from polytrack.settings import Settings
from polytrack.store.index import RunLink, RunRef
from polytrack.store.local import LocalStore

__all__ = [
    "DIRECTIONS",
    "Edge",
    "LineageGraph",
    "Node",
    "RunNode",
    "consumers",
    "downstream",
    "lineage",
    "producers",
    "upstream",
]

DIRECTIONS: Final = ("both", "up", "down")
# Written before a target to say what it is, when a run name and a data name are alike.
_PREFIXES: Final = ("run:", "name:", "path:", "sha256:")
_HEX: Final = re.compile(r"[0-9a-f]{6,64}")
_TYPE_RANK: Final = {"data": 0, "artifact": 1, "model": 2}
_SHORT: Final = 12  # hex digits of a digest shown in a tree or a dot label


@frozen
class Node:
    """Content that runs consumed or produced, with what every run called it.

    `type` is the most specific seen: "model" if any run logged it as a model, else
    "artifact" if any logged it as an artifact, else "data".
    """

    digest: str
    type: str
    names: tuple[str, ...]
    paths: tuple[str, ...]
    size: int

    @classmethod
    def of(cls, refs: Sequence[RunRef]) -> Node:
        """The node of refs that share one digest."""
        return cls(
            digest=refs[0].digest,
            type=max((ref.type for ref in refs), key=lambda t: _TYPE_RANK.get(t, 0)),
            names=tuple(sorted({ref.name for ref in refs})),
            paths=tuple(sorted({ref.path for ref in refs if ref.path})),
            size=refs[0].size,
        )

    @property
    def key(self) -> str:
        return self.digest


@frozen
class RunNode:
    """A run in a lineage graph; `status` is None for a run linked to but not in the store."""

    id: str
    name: str | None
    project: str | None
    status: str | None
    created_at: float | None = None

    @classmethod
    def of(cls, info: RunInfo) -> RunNode:
        return cls(info.id, info.name, info.project, info.status, info.created_at)

    @property
    def key(self) -> str:
        return run_key(self.id)


@frozen
class Edge:
    """`source` -> `target`, downstream (see the module docstring); node keys are digests
    and `run:<id>`. `name` and `path` are what the run called the node and where it was."""

    source: str
    target: str
    relation: str  # input | output | reproduces
    name: str | None = None
    path: str | None = None


def run_key(run_id: str) -> str:
    """The graph key of a run: `run:<id>` (a node's key is its digest)."""
    return f"run:{run_id}"


@frozen
class LineageGraph:
    """Runs and nodes reached from `roots`, and the edges between them.

    Example:
        >>> graph = polytrack.lineage("model.pt", depth=2)
        >>> print(graph.render_tree())
    """

    roots: tuple[str, ...]
    runs: dict[str, RunNode]  # by run id
    nodes: dict[str, Node]  # by digest
    edges: tuple[Edge, ...]
    depth: int | None = None
    direction: str = "both"

    def parents(self, key: str) -> list[Edge]:
        """Edges into `key`: what is directly upstream of it."""
        return [edge for edge in self.edges if edge.target == key]

    def children(self, key: str) -> list[Edge]:
        """Edges out of `key`: what is directly downstream of it."""
        return [edge for edge in self.edges if edge.source == key]

    def run_ids(self) -> list[str]:
        """Every run in the graph, oldest first."""
        return sorted(self.runs, key=lambda i: (self.runs[i].created_at or 0.0, i))

    # -- export -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data: roots, depth, direction, runs, nodes and edges."""
        return {
            "roots": list(self.roots),
            "depth": self.depth,
            "direction": self.direction,
            "runs": [
                {
                    "id": run.id,
                    "name": run.name,
                    "project": run.project,
                    "status": run.status,
                    "created_at": run.created_at,
                }
                for run in (self.runs[i] for i in self.run_ids())
            ],
            "nodes": [
                {
                    "digest": node.digest,
                    "type": node.type,
                    "names": list(node.names),
                    "paths": list(node.paths),
                    "size": node.size,
                }
                for node in sorted(self.nodes.values(), key=lambda n: n.digest)
            ],
            "edges": [
                {
                    "source": edge.source,
                    "target": edge.target,
                    "relation": edge.relation,
                    "name": edge.name,
                    "path": edge.path,
                }
                for edge in self.edges
            ],
        }

    def to_json(self) -> str:
        """The graph as indented JSON (`to_dict`)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, left to right: `dot -Tsvg` draws it.

        Runs are boxes; data cylinders, artifacts notes, models components; the roots are
        drawn bold; "reproduces" edges are dashed.
        """
        shapes = {"data": "cylinder", "artifact": "note", "model": "component"}
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        for run_id in self.run_ids():
            run = self.runs[run_id]
            label = f"run {run.id}\n{run.name or '?'}\n{run.status or 'not in this store'}"
            bold = self._dot_bold(run.key)
            lines.append(f"  {_dot_id(run.key)} [shape=box, {bold}label={_dot_id(label)}];")
        for node in sorted(self.nodes.values(), key=lambda n: n.digest):
            label = f"{node.type} {', '.join(node.names)}\n{_short(node.digest)}"
            lines.append(
                f"  {_dot_id(node.key)} [shape={shapes.get(node.type, 'ellipse')}, "
                f"{self._dot_bold(node.key)}label={_dot_id(label)}];"
            )
        for edge in self.edges:
            attributes = [f"label={_dot_id(edge.relation)}"]
            if edge.relation == "reproduces":
                attributes.append("style=dashed")
            lines.append(
                f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)} [{', '.join(attributes)}];"
            )
        lines.append("}")
        return "\n".join(lines)

    def _dot_bold(self, key: str) -> str:
        return "penwidth=2, " if key in self.roots else ""

    def _repr_html_(self) -> str:
        return display.lineage_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("LineageGraph(...)" if cycle else self.render_tree())

    def render_tree(self) -> str:
        """The graph as an indented tree per root: its upstream, then its downstream.

        A node met a second time is printed with "(see above)" and not expanded again,
        so a run that consumed its own output ends the branch instead of looping.
        """
        lines: list[str] = []
        for root in self.roots:
            if lines:
                lines.append("")
            lines.append(self._label(root))
            sections = [("up", "upstream"), ("down", "downstream")]
            shown = [(way, title) for way, title in sections if self.direction in (way, "both")]
            expanded: set[str] = {root}
            for index, (way, title) in enumerate(shown):
                last = index == len(shown) - 1
                lines.append(("└── " if last else "├── ") + title)
                prefix = "    " if last else "│   "
                branch = list(self._branch(root, way, prefix, expanded))
                lines += branch or [prefix + "└── none"]
        return "\n".join(lines)

    def _branch(self, key: str, way: str, prefix: str, expanded: set[str]) -> Iterator[str]:
        edges = self.parents(key) if way == "up" else self.children(key)
        for index, edge in enumerate(edges):
            last = index == len(edges) - 1
            other = edge.source if way == "up" else edge.target
            seen = other in expanded
            text = f"{_verb(edge, way)} {self._label(other, edge)}"
            yield prefix + ("└── " if last else "├── ") + text + (" (see above)" if seen else "")
            if not seen:
                expanded.add(other)
                yield from self._branch(other, way, prefix + ("    " if last else "│   "), expanded)

    def _label(self, key: str, edge: Edge | None = None) -> str:
        """`run <id>  <name>  (<status>)`, or `<type> "<name>"  sha256:<12 hex>  <path>`."""
        if key.startswith("run:"):
            run = self.runs.get(key.removeprefix("run:"))
            if run is None or run.status is None:
                return f"run {key.removeprefix('run:')}  (not in this store)"
            return f"run {run.id}  {_printable(run.name or '')}  ({run.status})"
        node = self.nodes[key]
        names = [edge.name] if edge is not None and edge.name else list(node.names)
        path = edge.path if edge is not None else (node.paths[0] if node.paths else None)
        text = f"{node.type} {', '.join(_quoted(n) for n in names)}  {_short(node.digest)}"
        return text + (f"  {_printable(path)}" if path else "")


def _verb(edge: Edge, way: str) -> str:
    """How the printed node relates to its parent line in the tree."""
    if edge.relation == "reproduces":
        return "reproduces" if way == "up" else "reproduced by"
    if edge.relation == "imported-from":  # its other end is a source's run (`importers`)
        return "imported from" if way == "up" else "imported as"
    if edge.relation == "input":
        return "consumed" if way == "up" else "consumed by"
    return "produced by" if way == "up" else "produced"


def _short(digest: str) -> str:
    hexdigest = digest.removeprefix("sha256:")
    return f"sha256:{hexdigest[:_SHORT]}"


def _printable(text: str) -> str:
    # Names and paths come from training scripts: escape control characters (an ESC
    # could restyle the terminal), as the CLI's tables do.
    return re.sub("[\x00-\x1f\x7f-\x9f]", lambda m: repr(m.group())[1:-1], text)


def _quoted(name: str) -> str:
    return '"' + _printable(name).replace('"', '\\"') + '"'


def _dot_id(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "") + '"'


# -- the walk ---------------------------------------------------------------------------


class _Walker:
    """Breadth-first over the index, each run's and each digest's rows read once."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._run_refs: dict[str, list[RunRef]] = {}
        self._digest_refs: dict[str, list[RunRef]] = {}
        self._links: dict[str, list[RunLink]] = {}

    def refs_of_run(self, run_id: str) -> list[RunRef]:
        if run_id not in self._run_refs:
            self._run_refs[run_id] = self._store.refs(run_ids=[run_id])
        return self._run_refs[run_id]

    def refs_of_digest(self, digest: str) -> list[RunRef]:
        if digest not in self._digest_refs:
            self._digest_refs[digest] = self._store.refs(digests=[digest])
        return self._digest_refs[digest]

    def links_of(self, run_id: str) -> list[RunLink]:
        if run_id not in self._links:
            self._links[run_id] = self._store.links(run_id)
        return self._links[run_id]

    def neighbours(self, key: str, way: str) -> list[tuple[str, Edge]]:
        """(the next key, the edge to it) one step upstream (`up`) or downstream."""
        found: list[tuple[str, Edge]] = []
        if key.startswith("run:"):
            run_id = key.removeprefix("run:")
            role = "input" if way == "up" else "output"
            for ref in self.refs_of_run(run_id):
                if ref.role == role:
                    edge = _ref_edge(ref)
                    found.append((ref.digest, edge))
            for link in self.links_of(run_id):
                # `link.run_id` reproduces `link.other_run_id`: the first is downstream.
                if way == "up" and link.run_id == run_id:
                    other = run_key(link.other_run_id)
                    found.append((other, Edge(other, key, link.relation)))
                elif way == "down" and link.other_run_id == run_id:
                    other = run_key(link.run_id)
                    found.append((other, Edge(key, other, link.relation)))
        else:
            role = "output" if way == "up" else "input"
            for ref in self.refs_of_digest(key):
                if ref.role == role:
                    found.append((run_key(ref.run_id), _ref_edge(ref)))
        return found

    def walk(self, roots: Sequence[str], *, depth: int | None, direction: str) -> LineageGraph:
        keys: set[str] = set(roots)
        edges: dict[tuple[str, str, str, str | None], Edge] = {}
        for way in ("up", "down"):
            if direction not in (way, "both"):
                continue
            seen = set(roots)
            frontier = list(roots)
            level = 0
            while frontier and (depth is None or level < depth):
                following: list[str] = []
                for key in frontier:
                    for other, edge in self.neighbours(key, way):
                        edges.setdefault((edge.source, edge.target, edge.relation, edge.name), edge)
                        if other not in seen:  # a run consuming its own output stops here
                            seen.add(other)
                            following.append(other)
                keys |= set(following)
                frontier, level = following, level + 1
        return self._graph(roots, keys, list(edges.values()), depth, direction)

    def _graph(
        self,
        roots: Sequence[str],
        keys: Iterable[str],
        edges: list[Edge],
        depth: int | None,
        direction: str,
    ) -> LineageGraph:
        run_ids = sorted(k.removeprefix("run:") for k in keys if k.startswith("run:"))
        runs = {info.id: RunNode.of(info) for info in self._store.infos(run_ids)}
        for run_id in run_ids:  # linked to, but deleted from the store since
            runs.setdefault(run_id, RunNode(run_id, None, None, None))
        digests = sorted(k for k in keys if not k.startswith("run:"))
        nodes = {digest: Node.of(self.refs_of_digest(digest)) for digest in digests}
        return LineageGraph(
            roots=tuple(roots),
            runs=runs,
            nodes=nodes,
            edges=tuple(edges),
            depth=depth,
            direction=direction,
        )


def _ref_edge(ref: RunRef) -> Edge:
    run = run_key(ref.run_id)
    if ref.role == "input":
        return Edge(ref.digest, run, "input", ref.name, ref.path)
    return Edge(run, ref.digest, "output", ref.name, ref.path)


# -- resolving what the caller named ---------------------------------------------------


def _resolve(
    store: LocalStore,
    target: str | os.PathLike[str],
    *,
    project: str | None,
    cache_dir: Path | None,
    runs: bool,
) -> list[str]:
    """The graph keys `target` names: a run (when `runs`), or the digests of a digest or
    its prefix, a path on disk (hashed), or a data/artifact name.

    A `run:`, `sha256:`, `path:` or `name:` prefix says which; without one, a run is
    tried first, then an existing path, a name, and a hex digest prefix.
    """
    if isinstance(target, os.PathLike):
        store.refresh()
        return _digests_of_path(store, os.fspath(target), cache_dir)
    if not isinstance(target, str) or not target:
        raise InvalidInputError(f"a lineage target must be a non-empty string; got {target!r}")
    kind, _, rest = target.partition(":")
    prefix = kind if f"{kind}:" in _PREFIXES and rest else None
    if prefix == "run":
        if not runs:
            raise InvalidInputError(f"{target!r} is a run; name data, an artifact or a model")
        return [run_key(store.resolve(rest, project=project))]
    if runs and prefix is None:
        try:
            return [run_key(store.resolve(target, project=project))]  # refreshes the index
        except AmbiguousRunError:
            raise
        except RunNotFoundError:
            pass
    else:
        store.refresh()
    if prefix == "sha256":
        return _digests_by_prefix(store, target)
    if prefix == "path":
        return _digests_of_path(store, rest, cache_dir)
    if prefix == "name":
        return _digests_by_name(store, rest) or _not_found(
            f"no data, artifact or model named {rest!r} was recorded"
        )
    if os.path.exists(target):
        return _digests_of_path(store, target, cache_dir)
    by_name = _digests_by_name(store, target)
    if by_name:
        return by_name
    if _HEX.fullmatch(target):
        found = _digests_by_prefix(store, f"sha256:{target}", missing_ok=True)
        if found:
            return found
    what = "run, " if runs else ""
    return _not_found(
        f"{target!r} names no {what}recorded data, artifact or model, digest or existing path"
    )


def _not_found(message: str) -> list[str]:
    raise RunNotFoundError(message)


def _digests_by_name(store: LocalStore, name: str) -> list[str]:
    return sorted({ref.digest for ref in store.refs(name=name)})


def _digests_by_prefix(store: LocalStore, prefix: str, *, missing_ok: bool = False) -> list[str]:
    if not re.fullmatch(r"sha256:[0-9a-f]{1,64}", prefix):
        raise InvalidInputError(f"{prefix!r} is not a digest: expected sha256:<hex>")
    found = sorted({ref.digest for ref in store.refs(digest_prefix=prefix)})
    if len(found) > 1:
        raise AmbiguousRunError(
            f"{prefix!r} is the start of {len(found)} recorded digests; give more of it"
        )
    if not found and not missing_ok:
        raise RunNotFoundError(f"no run consumed or produced {prefix}")
    return found


def _digests_of_path(store: LocalStore, given: str, cache_dir: Path | None) -> list[str]:
    """An existing path is hashed as `log_data_ref` hashes it (through the same cache) and
    looked up by content; a path gone from disk is looked up by the path runs recorded."""
    from polytrack.capture.data import HashCache, hash_source  # hashlib, sqlite: on use

    path = os.path.abspath(given)
    if not os.path.exists(path):
        found = sorted({ref.digest for ref in store.refs(path=path)})
        if not found:
            raise RunNotFoundError(f"{path} does not exist, and no run recorded that path")
        return found
    cache = HashCache.open(cache_dir / "hashes.sqlite") if cache_dir is not None else None
    try:
        digest = hash_source(path, cache=cache).digest
    finally:
        if cache is not None:
            cache.close()
    if store.refs(digests=[digest]):
        return [digest]
    elsewhere = {ref.run_id for ref in store.refs(path=path)}
    hint = (
        f"; {len(elsewhere)} run(s) recorded other content at this path, so it changed since"
        " (`path:` finds what they recorded only once the file is gone)"
        if elsewhere
        else ""
    )
    raise RunNotFoundError(f"no run consumed or produced {path} ({digest}){hint}")


# -- the public functions ---------------------------------------------------------------


def lineage(
    target: str | os.PathLike[str],
    *,
    depth: int | None = None,
    direction: str = "both",
    project: str | None = None,
    home: str | Path | None = None,
) -> LineageGraph:
    """What a run, dataset, artifact or model came from and what came of it.

    Args:
        target: a run (id, unique id prefix, or name), a digest (`sha256:<hex>`, or a
            unique prefix of one), a data/artifact/model name as runs logged it (every
            content logged under it), or a path on disk (hashed, then looked up). Write
            `run:`, `name:`, `path:` or `sha256:` before it where a run name and a data
            name are alike. Without a prefix: a run, an existing path, a name, a digest.
        depth: follow at most this many edges from the target (a run and the data it
            consumed are one edge apart); None follows them all.
        direction: "both", "up" (upstream only) or "down" (downstream only).
        project: look run names up in this project only.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        RunNotFoundError: nothing recorded matches `target` (AmbiguousRunError: a prefix
            or a run name matches several).
        InvalidInputError: a negative `depth`, an unknown `direction`, a malformed digest.

    Example:
        >>> print(polytrack.lineage("out/model.pt").render_tree())
    """
    _check(depth, direction)
    settings = Settings.from_env()
    with _open(home, settings) as store:
        roots = _resolve(store, target, project=project, cache_dir=settings.cache_dir, runs=True)
        return _Walker(store).walk(roots, depth=depth, direction=direction)


def upstream(
    run: str,
    *,
    depth: int | None = None,
    project: str | None = None,
    home: str | Path | None = None,
) -> LineageGraph:
    """Everything a run came from: the data it consumed, the runs that produced that data,
    what those consumed, ... and the runs it reproduces.

    Args:
        run: id, unique id prefix, or name.
        depth: at most this many edges up; None: all the way.
        project: look names up in this project only.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        RunNotFoundError: no run matches (AmbiguousRunError: several do).

    Example:
        >>> from polytrack.history.lineage import upstream
        >>> sorted(upstream("train-2").runs)
    """
    return _run_graph(run, "up", depth=depth, project=project, home=home)


def downstream(
    run: str,
    *,
    depth: int | None = None,
    project: str | None = None,
    home: str | Path | None = None,
) -> LineageGraph:
    """Everything that came of a run: what it produced, the runs that consumed that, ...
    and the runs that reproduce it.

    Args:
        run: id, unique id prefix, or name.
        depth: at most this many edges down; None: all the way.
        project: look names up in this project only.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        RunNotFoundError: no run matches (AmbiguousRunError: several do).

    Example:
        >>> from polytrack.history.lineage import downstream
        >>> downstream("prepare").render_tree()
    """
    return _run_graph(run, "down", depth=depth, project=project, home=home)


def consumers(ref: str | os.PathLike[str], *, home: str | Path | None = None) -> list[RunView]:
    """The runs that consumed a dataset, artifact or model, oldest first.

    Args:
        ref: a digest or its unique prefix, a name as runs logged it, or a path on disk
            (hashed, then looked up by content); prefixes as for `lineage`.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        RunNotFoundError: nothing recorded matches `ref`.

    Example:
        >>> [run.name for run in consumers("data/train.csv")]
    """
    return _runs_with(ref, "input", home)


def producers(ref: str | os.PathLike[str], *, home: str | Path | None = None) -> list[RunView]:
    """The runs that produced a dataset, artifact or model, oldest first.

    Args:
        ref: as for `consumers`.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        RunNotFoundError: nothing recorded matches `ref`.

    Example:
        >>> producers("out/model.pt")[0].id
    """
    return _runs_with(ref, "output", home)


def _run_graph(
    run: str, way: str, *, depth: int | None, project: str | None, home: str | Path | None
) -> LineageGraph:
    _check(depth, way)
    with _open(home, None) as store:
        root = run_key(store.resolve(run, project=project))
        return _Walker(store).walk([root], depth=depth, direction=way)


def _runs_with(ref: str | os.PathLike[str], role: str, home: str | Path | None) -> list[RunView]:
    settings = Settings.from_env()
    with _open(home, settings) as store:
        digests = _resolve(store, ref, project=None, cache_dir=settings.cache_dir, runs=False)
        run_ids = sorted({r.run_id for r in store.refs(digests=digests, role=role)})
        infos = sorted(store.infos(run_ids), key=lambda info: (info.created_at, info.id))
    return [RunView.of(info) for info in infos]


def _check(depth: int | None, direction: str) -> None:
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise InvalidInputError(f"depth must be a whole number of 0 or more; got {depth!r}")
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}"
        )


def _open(home: str | Path | None, settings: Settings | None) -> LocalStore:
    path = Path(home).expanduser() if home is not None else (settings or Settings.from_env()).home
    return LocalStore.open(path, create=False)
