"""Polyaxonfiles read from YAML, with the file and line of every value kept through merges.

A loaded document is plain data (dicts, lists, scalars) so that rendering, preset merging
and cattrs can work on it as usual. Where each value came from is kept beside it, in a
`Located` registry keyed by the identity of the dict or list that holds the value: copying
or merging containers through `Located` carries their origins along, so an error found
after presets were merged still names the file and line the value was written on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import yaml
from attrs import frozen

from polytrack.errors import SpecError
from polytrack.spec._yaml import Document

__all__ = [
    "MAX_COPIED",
    "Key",
    "Located",
    "Origin",
    "PatchStrategy",
    "format_path",
]

Key: TypeAlias = str | int
PatchStrategy: TypeAlias = Literal["post_merge", "pre_merge", "replace", "isnull"]

MAX_COPIED: Final = 2_000_000
"""The most values one load may copy. Each DAG operation copies its component (about
three times, for patches and templates): 100 operations over a component of 1,000 values
copy 300,000, a second's work. A 1 MiB file with a 900 KiB component and a thousand
operations naming it would copy 75 million: minutes of work and gigabytes held."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def format_path(path: Sequence[Key]) -> str:
    """`("run", "init", 0, "git")` -> `run.init[0].git`; odd keys as `limits["nvidia.com/gpu"]`."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            text += f".{key}" if text else key
        else:
            text += '["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return text


@frozen
class Origin:
    """Where a value was written: file as the user named it, 1-based line, path in the file."""

    file: str
    line: int
    path: tuple[Key, ...]


class Located:
    """Origins of the values in documents, kept per container and carried through copies.

    One instance serves one `load()`: it holds every container it located, so container
    identities stay unique for its lifetime.
    """

    def __init__(self) -> None:
        self._entries: dict[int, dict[Key, Origin]] = {}
        self._starts: dict[int, Origin] = {}
        self._alive: list[object] = []
        self._copied = 0

    # -- reading -----------------------------------------------------------------------

    def read(self, path: Path, display: str) -> Any:
        """Parse the YAML file at `path`; `display` is how messages name it.

        Raises:
            SpecError: the file cannot be read, is not YAML, holds several documents or
                repeats a key, or is refused as hostile (too large, nested too deep,
                aliases that repeat too much or contain themselves: see `_yaml`).
        """
        document = Document.read(path, display)
        try:
            with document.reading():
                return self._build(document, document.root, ())
        finally:
            document.close()

    def _build(
        self,
        document: Document,
        node: yaml.Node,
        path: tuple[Key, ...],
        parent: yaml.Node | None = None,
        index: Any = None,
    ) -> Any:
        file = document.display
        with document.entering(node, len(path) + 1, parent, index):
            line = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                mapping: dict[Any, Any] = {}
                self.begin(mapping, Origin(file, line, path))
                for key_node, value_node in document.entries(node):
                    key_line = key_node.start_mark.line + 1
                    key = self._key(document, key_node, path)
                    if key in mapping:
                        first = self.entry(mapping, key)
                        again = f" (first at line {first.line})" if first is not None else ""
                        raise SpecError(
                            f'duplicate key "{key}"{again}',
                            file=file,
                            line=key_line,
                            path=format_path(path),
                        )
                    mapping[key] = self._build(document, value_node, (*path, key), node, key_node)
                    self.note(mapping, key, Origin(file, key_line, (*path, key)))
                return mapping
            if isinstance(node, yaml.SequenceNode):
                items: list[Any] = []
                self.begin(items, Origin(file, line, path))
                for position, item_node in enumerate(node.value):
                    items.append(
                        self._build(document, item_node, (*path, position), node, position)
                    )
                    item_line = item_node.start_mark.line + 1
                    self.note(items, position, Origin(file, item_line, (*path, position)))
                return items
            assert isinstance(node, yaml.ScalarNode)
            return document.scalar(node)

    def _key(self, document: Document, node: yaml.Node, path: tuple[Key, ...]) -> Key:
        """The key written at `node`, which must be text (or an int: list-like keys)."""
        key = document.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(key, str | int) and not isinstance(key, bool):
            return key
        if isinstance(node, yaml.ScalarNode):
            shown = repr(key)
        else:  # not constructed: through an alias it could be an alias bomb
            shown = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        where = format_path(path) or "the document"
        raise SpecError(
            f"keys must be text, got {shown} in {where}",
            file=document.display,
            line=node.start_mark.line + 1,
        )

    # -- origins -----------------------------------------------------------------------

    def note(self, container: object, key: Key, origin: Origin) -> None:
        """Record that `container[key]` was written at `origin`."""
        entries = self._entries.get(id(container))
        if entries is None:
            entries = self._entries[id(container)] = {}
            self._alive.append(container)
        entries[key] = origin

    def begin(self, container: object, origin: Origin) -> None:
        """Record that `container` itself begins at `origin`."""
        self._starts[id(container)] = origin
        self._alive.append(container)

    def entry(self, container: object, key: Key) -> Origin | None:
        """Where `container[key]` was written, if known."""
        return self._entries.get(id(container), {}).get(key)

    def start(self, container: object) -> Origin | None:
        """Where `container` itself begins, if known."""
        return self._starts.get(id(container))

    def locate(self, root: Any, path: Sequence[Key]) -> tuple[Origin | None, tuple[Key, ...]]:
        """The origin of the deepest known value on `path` below `root`, and the rest of it.

        A key missing from a container is also looked up under its snake_case spelling
        (`volume_mounts` for `volumeMounts`), since Kubernetes objects accept both.
        """
        found = self.start(root)
        rest = tuple(path)
        current = root
        for depth, key in enumerate(path):
            if isinstance(current, Mapping):
                actual = _spelling(current, key)
                if actual is None:
                    break
                origin = self.entry(current, actual)
                current = current[actual]
            elif isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
                origin = self.entry(current, key)
                current = current[key]
            else:
                break
            if origin is not None:
                found, rest = origin, tuple(path[depth + 1 :])
        return found, rest

    def error(self, root: Any, path: Sequence[Key], reason: str) -> SpecError:
        """A `SpecError` for the value at `path` below `root`, placed by its origin."""
        origin, rest = self.locate(root, path)
        if origin is None:
            return SpecError(reason, path=format_path(tuple(path)))
        return SpecError(
            reason, file=origin.file, line=origin.line, path=format_path((*origin.path, *rest))
        )

    # -- copies and merges --------------------------------------------------------------

    def copy(self, value: Any) -> Any:
        """A deep copy of `value` whose containers keep the origins of the originals.

        Raises:
            SpecError: this load has copied more than `MAX_COPIED` values (see there).
        """
        if isinstance(value, Mapping | list):
            self._copied += len(value) + 1
            if self._copied > MAX_COPIED:
                raise self._too_many_copies(value)
        if isinstance(value, Mapping):
            mapping = {key: self.copy(item) for key, item in value.items()}
            self._inherit(mapping, value)
            return mapping
        if isinstance(value, list):
            items = [self.copy(item) for item in value]
            self._inherit(items, value)
            return items
        return value

    def _too_many_copies(self, value: Any) -> SpecError:
        origin = self.start(value)
        reason = (
            f"resolving this Polyaxonfile copies more than {MAX_COPIED:,} values: its DAG "
            f"repeats large components (dagRef, pathRef) too often"
        )
        if origin is None:
            return SpecError(reason)
        return SpecError(reason, file=origin.file, line=origin.line, path=format_path(origin.path))

    def without(self, container: Mapping[Any, Any], *keys: Key) -> dict[Any, Any]:
        """A shallow copy of `container` lacking `keys`, keeping the origins of the rest."""
        kept = {key: item for key, item in container.items() if key not in keys}
        self._inherit(kept, container)
        return kept

    def _inherit(self, new: object, old: object) -> None:
        start = self.start(old)
        if start is not None:
            self.begin(new, start)
        for key, origin in self._entries.get(id(old), {}).items():
            self.note(new, key, origin)

    def merge(self, base: Any, patch: Any, strategy: PatchStrategy = "post_merge") -> Any:
        """`patch` applied over `base` as Polyaxon's patch strategies do, as a new value.

        `post_merge` merges mappings deeply with `patch` winning and appends the items of a
        list that `base` lacks; `pre_merge` is the same with `base` winning; `replace` takes
        each top-level key of `patch` as is; `isnull` fills only the keys `base` lacks.
        """
        if base is None:
            return self.copy(patch)
        if patch is None:
            return self.copy(base)
        if strategy == "pre_merge":
            return self._deep(patch, base)
        if isinstance(base, Mapping) and isinstance(patch, Mapping):
            if strategy == "replace":
                return self._combine(base, patch, lambda _key, _old, new: self.copy(new))
            if strategy == "isnull":
                return self._combine(
                    base,
                    {key: item for key, item in patch.items() if base.get(key) is None},
                    lambda _key, _old, new: self.copy(new),
                )
        if strategy == "isnull":
            return self.copy(base)
        if strategy == "replace":
            return self.copy(patch)
        return self._deep(base, patch)

    def _deep(self, base: Any, patch: Any) -> Any:
        if isinstance(base, Mapping) and isinstance(patch, Mapping):
            return self._combine(base, patch, lambda _key, old, new: self._deep(old, new))
        if isinstance(base, list) and isinstance(patch, list):
            merged = self.copy(base)
            for index, item in enumerate(patch):
                if item not in base:
                    origin = self.entry(patch, index)
                    merged.append(self.copy(item))
                    if origin is not None:
                        self.note(merged, len(merged) - 1, origin)
            return merged
        return self.copy(patch)

    def _combine(
        self,
        base: Mapping[Any, Any],
        patch: Mapping[Any, Any],
        both: Callable[[Any, Any, Any], Any],
    ) -> dict[Any, Any]:
        merged = self.copy(base)
        for key, item in patch.items():
            merged[key] = both(key, base[key], item) if key in base else self.copy(item)
            origin = self.entry(patch, key)
            if origin is not None:
                self.note(merged, key, origin)
        return merged  # type: ignore[no-any-return]


def _spelling(container: Mapping[Any, Any], key: Key) -> Key | None:
    """The key of `container` spelled `key`, or its snake_case/camelCase twin."""
    if key in container:
        return key
    if isinstance(key, str):
        wanted = key.replace("_", "").lower()
        for actual in container:
            if isinstance(actual, str) and actual.replace("_", "").lower() == wanted:
                return actual
    return None
