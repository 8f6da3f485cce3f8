"""YAML files parsed into nodes with bounds, so that no file can crash or exhaust a load.

A Polyaxonfile may come from anyone (a preset, a pull request, a `pathRef`), and PyYAML's
safe loader is safe only against running code: a recursive alias (`&a [*a]`) or nesting
20,000 deep overflows Python's stack, a billion-laughs file (aliases of aliases) expands
to 9**9 values, `<<` merge keys can do the same, a 5,000-digit integer raises
`ValueError`, and `"\\ud800"` yields text that cannot be printed. Each is refused here as
a `SpecError` naming the file and line, at a bound far above what a real Polyaxonfile
needs (Polyaxon's examples and our fixtures nest at most a dozen levels deep and weigh
a few KiB):

- `MAX_BYTES`: at most 1 MiB is read, checked before parsing. Pure-Python YAML takes
  about 10 s per MiB on a busy CI core, so a 10 MB file would take minutes to refuse;
  1 MiB is still 300 times the size of a large Polyaxonfile. Big content (scripts,
  configs) belongs in files the run fetches (`init`, artifacts), not inline.
- `MAX_DEPTH`: 64 levels of mappings and lists, counted while composing (before any of
  our recursive walks runs) and again while building, where aliases can stack one nested
  value inside another. Every later walk (presets, templates, cattrs, `polytrack check`'s
  YAML output) recurses a few frames per level, so 64 levels stay far from Python's
  recursion limit of 1,000 frames.
- `MAX_REPEATED`: aliases and merge keys may repeat at most 100,000 values beyond those
  the file spells out, enough for any sharing of containers or environments between DAG
  operations, and a bound on memory for an alias bomb.
- `MAX_NUMBER_CHARS`: an integer is at most 1,000 characters, so that converting it
  stays linear (YAML 1.1's base-60 `1:2:3` is quadratic) and it prints within Python's
  4,300-digit limit on `int`/`str` conversion (CVE-2020-10735).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from polytrack.errors import SpecError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_REPEATED",
    "Document",
    "read_text",
]

MAX_BYTES: Final = 1 << 20
MAX_DEPTH: Final = 64
MAX_REPEATED: Final = 100_000
MAX_NUMBER_CHARS: Final = 1_000

_INT: Final = "tag:yaml.org,2002:int"
_STR: Final = "tag:yaml.org,2002:str"
_MERGE: Final = "tag:yaml.org,2002:merge"
_VALUE: Final = "tag:yaml.org,2002:value"
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_text(path: Path, display: str) -> str:
    """The text of the file at `path`, refused if over `MAX_BYTES` or not UTF-8.

    Reads at most one byte more than the cap, so `/dev/zero` or a 10 GB file are refused
    as quickly as a 2 MB one.

    Raises:
        SpecError: the file cannot be read, is too large or is not UTF-8 text.
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
            status = os.fstat(stream.fileno())
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror or exc}", file=display) from exc
    if len(data) > MAX_BYTES:
        regular = stat.S_ISREG(status.st_mode) and status.st_size > MAX_BYTES
        size = f"{status.st_size:,} bytes" if regular else f"over {MAX_BYTES:,} bytes"
        raise SpecError(
            f"the file is {size}; polytrack reads Polyaxonfiles of at most 1 MiB "
            f"({MAX_BYTES:,} bytes): keep large content in files the run fetches (init, "
            f"artifacts)",
            file=display,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise SpecError(
            f"cannot read the file: it is not UTF-8 text (byte 0x{byte})", file=display, line=line
        ) from exc


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as text and composes within `MAX_DEPTH`.

    `startAt: 2024-01-01` stays a string. It counts the nodes the file spells out (what
    aliases repeat is measured against it) and remembers where each alias is used, which
    PyYAML forgets: an alias composes to the very node it names.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.spelled = 0
        self.alias_lines: dict[tuple[int, object], int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        line = self._next_line()
        if self.check_event(AliasEvent):
            node = super().compose_node(parent, index)
            if parent is not None and index is not None:
                self.alias_lines[_position(parent, index)] = line
            return node
        self.spelled += 1
        if not self.check_event(CollectionStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise _Refused(_too_deep(), line)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _next_line(self) -> int:
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        return 1 if mark is None else int(mark.line) + 1  # PyYAML's events always have one


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _position(parent: Node, index: Any) -> tuple[int, object]:
    """A child's place in `parent`: its index in a sequence, its key node in a mapping."""
    return id(parent), index if isinstance(index, int) else id(index)


def _too_deep() -> str:
    return (
        f"nested deeper than {MAX_DEPTH} levels of mappings and lists; polytrack refuses "
        f"such a file (a Polyaxonfile needs about a dozen)"
    )


class _Refused(Exception):
    """Raised inside PyYAML's composer, where the file's name is not known."""

    def __init__(self, reason: str, line: int | None) -> None:
        super().__init__(reason)
        self.reason, self.line = reason, line


class Document:
    """One YAML file's nodes, and the bookkeeping that keeps building them bounded.

    Whoever builds values from the nodes calls `entering` around each one: it refuses a
    value nested too deep, a value that contains itself through an alias, and aliases
    that repeat too much. Mappings are read through `entries` (merge keys resolved) and
    scalars through `scalar` (checked).
    """

    def __init__(self, display: str, root: Node, loader: _Loader) -> None:
        self.display = display
        self.root = root
        self._loader = loader
        self._built: set[int] = set()
        self._active: set[int] = set()
        self._merging: set[int] = set()
        self._merged: dict[int, list[tuple[Node, Node]]] = {}
        self._spent = 0
        self._budget = loader.spelled + MAX_REPEATED
        self._repeating_from: int | None = None

    @classmethod
    def read(cls, path: Path, display: str) -> Document:
        """Parse the single YAML document in the file at `path`; `display` names it.

        Raises:
            SpecError: the file cannot be read, is not YAML, holds several documents or
                none, or is refused (see the module docstring).
        """
        text = read_text(path, display)
        with _translated(display, text):
            loader = _Loader(text)  # checks that every character is printable
        try:
            with _translated(display, text):
                root = loader.get_single_node()
        except BaseException:
            loader.dispose()
            raise
        if root is None:
            loader.dispose()
            raise SpecError("the file is empty", file=display, line=1)
        return cls(display, root, loader)

    def close(self) -> None:
        """Drop the parser's state; the document is not read after this."""
        self._loader.dispose()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around building values: PyYAML's errors and refusals become `SpecError`s."""
        with _translated(self.display):
            yield

    @contextmanager
    def entering(
        self, node: Node, depth: int, parent: Node | None = None, index: Any = None
    ) -> Iterator[None]:
        """Around building the value of `node`, the `depth`-th level of its document.

        `parent` and `index` (a sequence index or a key node) say where it is used, so
        that a refused alias is named by the line it is used on.
        """
        key = id(node)
        again = key in self._built
        if key in self._active:
            line = self._alias_line(node, parent, index)
            raise self._refusal(
                f"a recursive alias: the value anchored at line {_line(node)} contains itself",
                line,
            )
        if isinstance(node, MappingNode | SequenceNode) and depth > MAX_DEPTH:
            raise self._refusal(_too_deep(), self._repeating_from or _line(node))
        self._spend(1)
        outermost = again and self._repeating_from is None
        if outermost:
            self._repeating_from = self._alias_line(node, parent, index)
        self._built.add(key)
        self._active.add(key)
        try:
            yield
        finally:
            self._active.discard(key)
            if outermost:
                self._repeating_from = None

    def entries(self, node: MappingNode, depth: int = 1) -> list[tuple[Node, Node]]:
        """The key and value nodes of a mapping, with `<<` merge keys resolved.

        As YAML's merge key type says: the mapping's own keys win over merged ones, and a
        mapping earlier in `<<: [*a, *b]` wins over a later one. A key the mapping itself
        repeats is kept twice, for the caller to report. PyYAML's `flatten_mapping` keeps
        a merged key and an own key of the same text side by side (a dict constructor
        would let the last win; a duplicate-key check refuses them), and PyYAML before
        the fix for yaml/pyyaml#897 kept every merged pair, so that merges of merges grow
        exponentially. Here each key is kept once, whatever PyYAML is installed, and every
        merged pair looked at counts against `MAX_REPEATED`.
        """
        if not any(key.tag == _MERGE for key, _ in node.value):
            return [(_as_text(key), value) for key, value in node.value]
        known = self._merged.get(id(node))
        if known is not None:
            return known
        if id(node) in self._merging:
            raise self._refusal(
                f"a recursive merge: the mapping at line {_line(node)} merges itself",
                _line(node),
            )
        if depth > MAX_DEPTH:
            raise self._refusal(
                f"merge keys nested deeper than {MAX_DEPTH} levels; polytrack refuses such a file",
                _line(node),
            )
        self._merging.add(id(node))
        try:
            merged = self._merge(node, depth)
        finally:
            self._merging.discard(id(node))
        self._merged[id(node)] = merged
        return merged

    def _merge(self, node: MappingNode, depth: int) -> list[tuple[Node, Node]]:
        entries: list[tuple[Node, Node]] = []
        places: dict[Any, int] = {}  # merged key -> its place in `entries`
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((_as_text(key_node), value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise self._refusal(
                        "a merge key (<<) takes a mapping or a list of mappings, got "
                        + ("a list" if isinstance(source, SequenceNode) else "a scalar"),
                        _line(source),
                    )
                pairs = self.entries(source, depth + 1)
                self._spend(len(pairs))
                for pair in pairs:
                    merged_key = self._merge_key(pair[0])
                    if merged_key is None:
                        entries.append(pair)  # not text: reported when the key is read
                    elif merged_key not in places:
                        places[merged_key] = len(entries)
                        entries.append(pair)
        for pair in own:
            own_key = self._merge_key(pair[0])
            place = places.pop(own_key, None) if own_key is not None else None
            if place is None:
                entries.append(pair)
            else:
                entries[place] = pair  # the mapping's own key wins, where it was merged
        return entries

    def _merge_key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return None
        value = self.scalar(node)
        try:
            hash(value)
        except TypeError:
            return None
        return (type(value), value)

    def scalar(self, node: ScalarNode) -> Any:
        """The value of a scalar node, refused where it would break later steps."""
        if node.tag == _INT and len(node.value) > MAX_NUMBER_CHARS:
            raise self._refusal(
                f"an integer of {len(node.value):,} characters; polytrack reads integers "
                f"of at most {MAX_NUMBER_CHARS:,} (quote it if it is text)",
                _line(node),
            )
        try:
            value = self._loader.construct_object(node, deep=True)
        except ValueError as exc:  # int(): past sys.set_int_max_str_digits
            raise self._refusal(f"cannot read the value: {exc}", _line(node)) from None
        if isinstance(value, str) and _SURROGATE.search(value):
            try:
                value = _characters(value)
            except ValueError as exc:
                raise self._refusal(str(exc), _line(node)) from None
        return value

    def _spend(self, count: int) -> None:
        self._spent += count
        if self._spent > self._budget:
            raise self._refusal(
                f"aliases and merge keys repeat more than {MAX_REPEATED:,} values (an alias "
                f"bomb?); polytrack refuses such a file",
                self._repeating_from,
            )

    def _alias_line(self, node: Node, parent: Node | None, index: Any) -> int:
        if parent is not None and index is not None:
            line = self._loader.alias_lines.get(_position(parent, index))
            if line is not None:
                return line
        if isinstance(index, Node):
            return _line(index)  # the key the alias is the value of
        return _line(node)

    def _refusal(self, reason: str, line: int | None) -> SpecError:
        return SpecError(reason, file=self.display, line=line)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _as_text(node: Node) -> Node:
    """`=` as a key is YAML's value key type; as a Polyaxonfile key it is just text."""
    if node.tag == _VALUE:
        node.tag = _STR
    return node


def _characters(text: str) -> str:
    """`text` with escaped UTF-16 surrogate pairs (`"\\ud83d\\ude00"`) joined into characters.

    YAML's `\\u` escapes give UTF-16 code units, which PyYAML keeps one by one: a pair is
    one character written the JSON way; a lone one is no character at all, and would make
    printing the value, or an error naming it, fail.

    Raises:
        ValueError: naming a lone surrogate.
    """
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError as exc:
        unit = int.from_bytes(exc.object[exc.start : exc.start + 2], "little")
        raise ValueError(
            f"text with a lone UTF-16 surrogate (\\u{unit:04x}), which is no character; "
            f"write a character beyond \\uffff as a pair (\\ud83d\\ude00) or as \\U0001f600"
        ) from None


@contextmanager
def _translated(display: str, text: str = "") -> Iterator[None]:
    """PyYAML's errors, and the composer's refusals, as `SpecError`s naming `display`."""
    try:
        yield
    except _Refused as exc:
        raise SpecError(exc.reason, file=display, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "not valid YAML"
        raise SpecError(f"invalid YAML: {reason}", file=display, line=line) from exc
    except yaml.reader.ReaderError as exc:
        # A control character: PyYAML gives its offset in the text, not its line.
        raise SpecError(
            f"invalid YAML: the control character #x{exc.character:04x} is not allowed "
            f"(write it as an escape in a double-quoted string)",
            file=display,
            line=text.count("\n", 0, exc.position) + 1 if text else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=display) from exc
