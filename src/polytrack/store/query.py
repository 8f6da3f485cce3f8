r"""The small query language behind `where=` and `order_by=`, compiled to SQLite SQL.

A query is parsed by a hand-written tokenizer and recursive-descent parser into frozen
AST nodes, then compiled to an SQL boolean expression over the table `runs` plus its `?`
parameters. User text never reaches the SQL string: every value, key and pattern is bound
as a parameter, so a query cannot inject SQL whatever it contains.

Filtering (`where=`)
--------------------
Fields:

- `metrics.<key>` is the metric's last value; `min(metrics.<key>)`, `max(metrics.<key>)`,
  `last(metrics.<key>)` and `count(metrics.<key>)` read its other summaries.
- `params.<key>` is a parameter's value; `outputs.<key>` a result the run reported
  (`log_outputs`), compared as params are.
- Keys may contain letters, digits, `_`, `.`, `/` and `-` (`params.net.depth` is the param
  `"net.depth"`, `metrics.train/loss` the metric `"train/loss"`); any other key is written
  in backticks: ``metrics.`val loss` `` (inside backticks, `\` escapes as in strings).
- Run attributes: `id`, `name`, `project`, `status`, `notes`, `host`, `user`, `created`,
  `finished`, `updated` (unix seconds), `duration` (`finished - created`, in seconds).
- `tags`, the run's set of tags.

Literals: numbers (`3`, `-0.5`, `1e-3`, `inf`, `-inf`), strings in single or double quotes
with backslash escapes (`\\`, `\'`, `\"`, `\n`, `\t`, `\r`), `true`, `false`, `null`.

Conditions:

- comparisons `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`;
- `x in (a, b, ...)` and `x not in (a, b, ...)`;
- `x ~ "glob*"`: SQLite GLOB, case-sensitive (`*`, `?`, `[abc]`), for text fields and params;
- `exists(metrics.k)`, `exists(params.k)`: the run has that key at all;
- tags: `"cnn" in tags`, `"cnn" not in tags`, `tags ~ "cn*"` (some tag matches).

Combine with `and`, `or`, `not` and parentheses; `not` binds tighter than `and`, which binds
tighter than `or`. Keywords, function names and attribute names are case-insensitive; keys
and strings are not.

Meaning:

- `params.x == 0.01` compares numeric params, `params.x == "adam"` string params and
  `params.x == true` / `false` / `null` the JSON value.
- A metric or param condition is false for a run that lacks the key: `params.lr != 0.1` only
  matches runs that have `lr`. `not (...)` negates the whole condition, so
  `not params.lr == 0.1` also matches runs without `lr`.
- A run attribute that is empty (`notes`, `host`, `user`, `finished`, `updated`) equals
  `null` and differs from every string or number: `host != "gpu-1"` matches runs with no
  host.
- `created`, `finished` and `updated` compare with unix seconds or with a string holding an
  ISO 8601 date or datetime (naive means UTC) or a relative time: `"7d ago"`, `"12h ago"`,
  `"30m ago"`, `"10s ago"`, `"now"`. `duration` compares with seconds or with strings like
  `"90s"`, `"1h"`, `"1h30m"` (units `s`, `m`, `h`, `d`, `w`). A run that has not finished
  has no `finished` or `duration`; `finished == null` finds it.
- `status` must be one of created, running, succeeded, failed, stopped, crashed.
- Comparing a text field with a number, or a number with a text (beyond the time rules
  above), is an error.

Examples::

    metrics.loss < 0.1 and params.optimizer == "adam"
    min(metrics.val/loss) <= 0.25 or "baseline" in tags
    status in ("failed", "crashed") and created > "7d ago"
    params.net.depth >= 50 and not exists(metrics.`test acc`)
    name ~ "resnet-*" and duration > "1h" and finished >= "2024-05-01T12:00"

Ordering (`order_by=`)
----------------------
A comma-separated string or a list of fields, each optionally prefixed with `-` for
descending: `"-metrics.acc, created"`, `["params.lr", "-max(metrics.acc)"]`. Any field
above except `tags` can be a sort key. Runs whose sort value is missing sort last in both
directions, and the run id breaks remaining ties so the order is total. Params sort by their
numeric value, then by their string value. The default is newest first.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Final, TypeAlias

from attrs import frozen

from polytrack.errors import QueryError

__all__ = ["check_keys", "compile_order_by", "compile_where"]

# A status outside this list is a typo, not an empty result, so queries reject it.
_STATUSES = ("created", "running", "succeeded", "failed", "stopped", "skipped", "crashed")

_DEFAULT_ORDER = "runs.created_at DESC, runs.id"
_TIE_BREAKER = "runs.id"
_FIELDS_HELP = (
    "metrics.<key>, params.<key>, outputs.<key>, tags, status, name, project, id, notes, "
    "host, user, created, finished, updated, duration, min/max/last/count(metrics.<key>)"
)
_OPERATORS_HELP = "==, !=, <, <=, >, >=, in, not in, ~"
_COMPARISONS = frozenset({"==", "=", "!=", "<", "<=", ">", ">="})
_ORDERING = frozenset({"<", "<=", ">", ">="})
_AGGREGATES = frozenset({"min", "max", "last", "count"})
_KEYWORDS = frozenset({"and", "or", "not", "in", "exists"})
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "n": "\n", "t": "\t", "r": "\r"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.ASCII)
_DURATION = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[smhdw])+\s*", re.ASCII)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# Operator characters that hint at another language's syntax.
_CHARACTER_HINTS = {"&": "; use 'and'", "|": "; use 'or'"}

_Scalar: TypeAlias = "int | float | str | bool | None"


@frozen
class _Attr:
    """How a run attribute maps onto `runs`, and which literals it compares with."""

    column: str
    kind: str  # "text", "time" or "duration": decides which literals are allowed
    nullable: bool


_ATTRS = {
    "id": _Attr("runs.id", "text", nullable=False),
    "name": _Attr("runs.name", "text", nullable=False),
    "project": _Attr("runs.project", "text", nullable=False),
    "status": _Attr("runs.status", "text", nullable=False),
    "notes": _Attr("runs.notes", "text", nullable=True),
    "host": _Attr("runs.host", "text", nullable=True),
    "user": _Attr("runs.user", "text", nullable=True),
    "created": _Attr("runs.created_at", "time", nullable=False),
    "finished": _Attr("runs.finished_at", "time", nullable=True),
    "updated": _Attr("runs.updated_at", "time", nullable=True),
    "duration": _Attr("(runs.finished_at - runs.created_at)", "duration", nullable=True),
}
_KIND_NAMES = {"text": "text", "time": "a time", "duration": "a duration in seconds"}


# --- tokens -----------------------------------------------------------------------------


@frozen
class _Token:
    """One lexeme; `text` is the exact source slice so errors can point at it."""

    kind: str  # word, number, string, key, op, "(", ")", ",", "-", end
    text: str
    pos: int
    value: int | float | str | None = None

    @property
    def length(self) -> int:
        return max(1, len(self.text))

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def describe(self) -> str:
        return "the end of the query" if self.kind == "end" else f"'{self.text}'"


def _is_digit(char: str) -> bool:
    # ASCII only: str.isdigit() also accepts "²" and other digits that int() rejects.
    return char.isascii() and char.isdigit()


def _is_word_start(char: str) -> bool:
    return char.isalpha() or char == "_"


def _is_word_char(char: str) -> bool:
    # "." and "/" let keys like train/loss and net.depth go unquoted; "-" cannot start a
    # word, so "-metrics.acc" in order_by still reads as a minus sign.
    return char.isalnum() or char in "_./-"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:  # SQLite (and every reader) takes UTF-8 only
        raise QueryError(
            "a lone surrogate is not text (decode the query's bytes with errors='replace')",
            query=text,
            position=surrogate.start(),
        )
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),-~":
            tokens.append(_Token("op" if char == "~" else char, char, i))
            i += 1
        elif char in "<>=!":
            j = i
            while j < n and text[j] in "<>=!":
                j += 1
            if text[i:j] not in _COMPARISONS:
                raise QueryError(
                    f"unknown operator '{text[i:j]}' (operators: {_OPERATORS_HELP})",
                    query=text,
                    position=i,
                    length=j - i,
                )
            tokens.append(_Token("op", text[i:j], i))
            i = j
        elif char in "'\"`":
            value, j = _scan_quoted(text, i)
            tokens.append(_Token("key" if char == "`" else "string", text[i:j], i, value))
            i = j
        elif _is_digit(char) or (char == "." and _is_digit(text[i + 1 : i + 2])):
            match = _NUMBER.match(text, i)
            assert match is not None  # the branch condition guarantees a digit here
            j = match.end()
            if j < n and _is_word_char(text[j]):
                while j < n and _is_word_char(text[j]):
                    j += 1
                raise QueryError(
                    f"invalid number '{text[i:j]}'", query=text, position=i, length=j - i
                )
            literal = match.group()
            number = _number(literal)
            if number is None:
                raise QueryError(
                    f"number '{literal[:40]}' is out of range (at most about 1.8e308)",
                    query=text,
                    position=i,
                    length=j - i,
                )
            tokens.append(_Token("number", literal, i, number))
            i = j
        elif _is_word_start(char):
            j = i + 1
            while j < n and _is_word_char(text[j]):
                j += 1
            tokens.append(_Token("word", text[i:j], i))
            i = j
        else:
            hint = _CHARACTER_HINTS.get(char, "")
            raise QueryError(f"unexpected character '{char}'{hint}", query=text, position=i)
    tokens.append(_Token("end", "", n))
    return tokens


def _number(literal: str) -> int | float | None:
    """A numeric literal as SQLite can bind it: an int within 64 bits, else a float
    (params' and metrics' numbers are compared as floats anyway); None past a float's range.
    `float()` has no digit limit, where `int()` refuses past 4,300 digits."""
    if literal.isdigit() and len(literal) <= 18:
        return int(literal)
    number = float(literal)
    return None if number == float("inf") else number


def _scan_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string or backticked key; return its value and the index past it."""
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\" and i + 1 < n:
            escaped = text[i + 1]
            if escaped not in _ESCAPES:
                raise QueryError(
                    f"invalid escape '\\{escaped}' (escapes: \\\\, \\', \\\", \\`, \\n, \\t, \\r)",
                    query=text,
                    position=i,
                    length=2,
                )
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        out.append(char)
        i += 1
    what = "key" if quote == "`" else "string"
    raise QueryError(f"unterminated {what}", query=text, position=start, length=n - start)


# --- syntax tree ------------------------------------------------------------------------


@frozen
class _Field:
    """A field reference; `pos`/`length` span all of it, e.g. `min(metrics.loss)`."""

    kind: str  # "attr", "metric", "param" or "tags"
    name: str  # attribute name or the metric/param key
    pos: int
    length: int
    aggregate: str = "last"  # metrics only: which column of `metrics` to read


@frozen
class _Value:
    """A literal and where it was written."""

    value: _Scalar
    pos: int
    length: int


@frozen
class _Compare:
    """`field <op> value`, `field [not] in (values)` or `field ~ pattern`."""

    field: _Field
    op: str  # canonical: ==, !=, <, <=, >, >=, in, not in, ~
    op_pos: int
    op_length: int
    values: tuple[_Value, ...]


@frozen
class _HasTag:
    """`"tag" [not] in tags`."""

    tag: _Value
    negated: bool


@frozen
class _Exists:
    """`exists(metrics.k)` or `exists(params.k)`."""

    field: _Field


@frozen
class _Not:
    operand: _Node


@frozen
class _BoolOp:
    op: str  # "AND" or "OR"
    operands: tuple[_Node, ...]


_Node: TypeAlias = "_Compare | _HasTag | _Exists | _Not | _BoolOp"
_CONSTANTS: dict[str, _Scalar] = {"true": True, "false": False, "null": None, "inf": float("inf")}


# --- parser -----------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; one instance parses one string."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._index = 0

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _previous(self) -> _Token | None:
        return self._tokens[self._index - 1] if self._index else None

    def _is_keyword(self, token: _Token, *words: str) -> bool:
        return token.kind == "word" and token.text.lower() in words

    def error(self, message: str, token: _Token) -> QueryError:
        return QueryError(message, query=self._text, position=token.pos, length=token.length)

    def _source(self, pos: int, length: int) -> str:
        return self._text[pos : pos + length]

    # where := or_expr END
    def parse_where(self) -> _Node:
        node = self._or()
        token = self._peek()
        if token.kind == ")":
            raise self.error("unexpected ')'", token)
        if token.kind != "end":
            raise self.error(
                f"unexpected {token.describe()}; expected 'and', 'or' or the end of the query",
                token,
            )
        return node

    # order_by := ["-"] field ("," ["-"] field)* END
    def parse_order(self, *, single: bool) -> list[tuple[_Field, bool]]:
        terms: list[tuple[_Field, bool]] = []
        while True:
            descending = self._peek().kind == "-"
            if descending:
                self._next()
            token = self._next()
            if token.kind != "word":
                raise self.error("expected a field to sort by", token)
            field = self._field(token)
            if field.kind == "tags":
                raise self.error("cannot sort by tags", token)
            terms.append((field, descending))
            token = self._next()
            if token.kind == "end":
                return terms
            if token.kind != "," or single:
                expected = "the end of the term" if single else "',' or the end of the query"
                raise self.error(f"unexpected {token.describe()}; expected {expected}", token)

    # or_expr := and_expr ("or" and_expr)*
    def _or(self) -> _Node:
        operands = [self._and()]
        while self._is_keyword(self._peek(), "or"):
            self._next()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _BoolOp("OR", tuple(operands))

    # and_expr := not_expr ("and" not_expr)*
    def _and(self) -> _Node:
        operands = [self._not()]
        while self._is_keyword(self._peek(), "and"):
            self._next()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else _BoolOp("AND", tuple(operands))

    # not_expr := "not" not_expr | primary
    def _not(self) -> _Node:
        if self._is_keyword(self._peek(), "not"):
            self._next()
            return _Not(self._not())
        return self._primary()

    # primary := "(" or_expr ")" | "exists" "(" field ")" | value ["not"] "in" "tags"
    #          | field comparison
    def _primary(self) -> _Node:
        previous = self._previous()
        token = self._peek()
        if token.kind == "(":
            self._next()
            node = self._or()
            closing = self._next()
            if closing.kind == "end":
                raise self.error("unclosed '('", token)
            if closing.kind != ")":
                raise self.error(
                    f"unexpected {closing.describe()}; expected ')', 'and' or 'or'", closing
                )
            return node
        if self._is_keyword(token, "exists"):
            return self._exists()
        if token.kind in ("string", "number", "-") or self._is_keyword(
            token, "true", "false", "null", "inf"
        ):
            return self._has_tag()
        if token.kind == "word":
            self._next()
            return self._comparison(self._field(token))
        after = f" after '{previous.text}'" if previous is not None else ""
        raise self.error(f"expected a condition{after}", token)

    def _exists(self) -> _Exists:
        keyword = self._next()
        self._expect("(", keyword)
        token = self._next()
        plain = token.kind == "word" and token.text.lower() not in _AGGREGATES
        field = self._field(token) if plain else None
        if field is None or field.kind not in ("metric", "param", "output"):
            raise self.error("exists() takes metrics.<key>, params.<key> or outputs.<key>", token)
        self._expect(")", keyword)
        return _Exists(field)

    def _has_tag(self) -> _HasTag:
        tag = self._value(None)
        token = self._next()
        negated = self._is_keyword(token, "not")
        if negated:
            token = self._next()
        if not self._is_keyword(token, "in") or not self._is_keyword(self._peek(), "tags"):
            raise self.error(
                "expected 'in tags' or 'not in tags' after a value "
                "(comparisons put the field first: metrics.loss < 0.1)",
                token,
            )
        self._next()
        return _HasTag(tag, negated)

    def _expect(self, kind: str, opener: _Token) -> _Token:
        token = self._next()
        if token.kind != kind:
            raise self.error(f"expected '{kind}' after '{opener.text}'", token)
        return token

    def _field(self, token: _Token) -> _Field:
        """Parse the field that starts with the word `token` (already consumed)."""
        lowered = token.text.lower()
        if lowered in _AGGREGATES and self._peek().kind == "(":
            self._next()
            inner_token = self._next()
            plain = inner_token.kind == "word" and inner_token.text.lower() not in _AGGREGATES
            inner = self._field(inner_token) if plain else None
            if inner is None or inner.kind != "metric":
                raise self.error(f"{lowered}() takes metrics.<key>", inner_token)
            closing = self._expect(")", token)
            return _Field("metric", inner.name, token.pos, closing.end - token.pos, lowered)
        for prefix, kind in (("metrics.", "metric"), ("params.", "param"), ("outputs.", "output")):
            if lowered.startswith(prefix):
                return self._keyed_field(token, prefix, kind)
        if lowered in _ATTRS:
            return _Field("attr", lowered, token.pos, token.length)
        if lowered == "tags":
            return _Field("tags", "tags", token.pos, token.length)
        raise self.error(f"unknown field '{token.text}' (fields: {_FIELDS_HELP})", token)

    def _keyed_field(self, token: _Token, prefix: str, kind: str) -> _Field:
        key = token.text[len(prefix) :]
        if key:
            return _Field(kind, key, token.pos, token.length)
        quoted = self._peek()
        if quoted.kind != "key" or quoted.pos != token.end:
            raise self.error(
                f"expected a key after '{token.text}' (write odd keys in backticks: "
                f"{prefix}`my key`)",
                token,
            )
        self._next()
        assert isinstance(quoted.value, str)
        if not quoted.value:
            raise self.error("empty key", quoted)
        return _Field(kind, quoted.value, token.pos, quoted.end - token.pos)

    def _comparison(self, field: _Field) -> _Compare:
        token = self._next()
        negated = self._is_keyword(token, "not")
        if negated:
            in_token = self._next()
            if not self._is_keyword(in_token, "in"):
                raise self.error("expected 'in' after 'not'", in_token)
            op, op_length = "not in", in_token.end - token.pos
        elif self._is_keyword(token, "in"):
            op, op_length = "in", token.length
        elif token.kind == "op":
            op, op_length = ("==" if token.text == "=" else token.text), token.length
        else:
            label = self._source(field.pos, field.length)
            raise self.error(f"expected an operator after '{label}' ({_OPERATORS_HELP})", token)
        if field.kind == "tags" and op != "~":
            raise QueryError(
                "tags can only be tested as '\"x\" in tags', '\"x\" not in tags' "
                "or 'tags ~ \"x*\"'",
                query=self._text,
                position=token.pos,
                length=op_length,
            )
        values = self._list() if op in ("in", "not in") else (self._value(token),)
        return _Compare(field, op, token.pos, op_length, values)

    def _list(self) -> tuple[_Value, ...]:
        opener = self._next()
        if opener.kind != "(":
            raise self.error("expected '(' after 'in'", opener)
        values = [self._value(opener)]
        while True:
            token = self._next()
            if token.kind == ")":
                return tuple(values)
            if token.kind == "end":
                raise self.error("unclosed '('", opener)
            if token.kind != ",":
                raise self.error(f"expected ',' or ')' in the list, got {token.describe()}", token)
            if self._peek().kind == ")":  # a trailing comma is harmless
                self._next()
                return tuple(values)
            values.append(self._value(token))

    def _value(self, after: _Token | None) -> _Value:
        token = self._next()
        if token.kind == "-":
            number = self._next()
            if number.kind == "number":
                assert isinstance(number.value, int | float)
                return _Value(-number.value, token.pos, number.end - token.pos)
            if self._is_keyword(number, "inf"):
                return _Value(float("-inf"), token.pos, number.end - token.pos)
            raise self.error("expected a number after '-'", number)
        if token.kind in ("number", "string"):
            return _Value(token.value, token.pos, token.length)
        if token.kind == "word":
            keyword = token.text.lower()
            if keyword in _CONSTANTS:
                return _Value(_CONSTANTS[keyword], token.pos, token.length)
        after_text = f" after '{after.text}'" if after is not None else ""
        bare_word = token.kind == "word" and token.text.lower() not in _KEYWORDS
        hint = f' (strings need quotes: "{token.text}")' if bare_word else ""
        raise self.error(f"expected a value{after_text}{hint}", token)


# --- compiler ---------------------------------------------------------------------------

_Sql: TypeAlias = "tuple[str, list[object]]"


class _Compiler:
    """Turns a syntax tree into SQL; `now` anchors relative times like "7d ago"."""

    def __init__(self, text: str, now: float) -> None:
        self._text = text
        self._now = now

    def _error(self, message: str, pos: int, length: int) -> QueryError:
        return QueryError(message, query=self._text, position=pos, length=length)

    def _source(self, pos: int, length: int) -> str:
        return self._text[pos : pos + length]

    def node(self, node: _Node) -> _Sql:
        if isinstance(node, _BoolOp):
            parts = [self.node(operand) for operand in node.operands]
            sql = f" {node.op} ".join(part for part, _ in parts)
            return f"({sql})", [param for _, params in parts for param in params]
        if isinstance(node, _Not):
            sql, params = self.node(node.operand)
            return f"NOT ({sql})", params
        if isinstance(node, _HasTag):
            tag = node.tag
            if not isinstance(tag.value, str):
                raise self._error(
                    f"a tag is a string, not {self._describe(tag)}", tag.pos, tag.length
                )
            exists = "EXISTS (SELECT 1 FROM tags t WHERE t.run_id = runs.id AND t.tag = ?)"
            return (f"NOT {exists}" if node.negated else exists), [tag.value]
        if isinstance(node, _Exists):
            return _keyed_exists(node.field, "1"), [node.field.name]
        return self._compare(node)

    def _compare(self, node: _Compare) -> _Sql:
        field = node.field
        for value in node.values:
            self._check_operator(node, value)
        if field.kind == "tags":
            pattern = node.values[0].value
            sql = "EXISTS (SELECT 1 FROM tags t WHERE t.run_id = runs.id AND t.tag GLOB ?)"
            return sql, [pattern]
        operands = [self._operand(field, node, value) for value in node.values]
        condition, params = _condition(node.op, operands)
        if field.kind == "attr":
            return condition, params
        return _keyed_exists(field, condition), [field.name, *params]

    def _check_operator(self, node: _Compare, value: _Value) -> None:
        """Reject operator/literal pairs that make no sense whatever the field."""
        if node.op == "~":
            if not isinstance(value.value, str):
                raise self._error(
                    f"'~' needs a quoted glob pattern such as \"resnet*\", "
                    f"not {self._describe(value)}",
                    value.pos,
                    value.length,
                )
            field = node.field
            text_field = field.kind in ("param", "output", "tags") or (
                field.kind == "attr" and _ATTRS[field.name].kind == "text"
            )
            if not text_field:
                label = self._source(field.pos, field.length)
                raise self._error(
                    f"'~' matches text, and '{label}' is {self._field_kind(field)}",
                    node.op_pos,
                    node.op_length,
                )
        elif node.op in _ORDERING and (value.value is None or isinstance(value.value, bool)):
            raise self._error(
                f"{self._describe(value)} can only be compared with ==, != or in",
                value.pos,
                value.length,
            )

    def _field_kind(self, field: _Field) -> str:
        if field.kind == "attr":
            return _KIND_NAMES[_ATTRS[field.name].kind]
        return "a number" if field.kind == "metric" else "a value"

    def _describe(self, value: _Value) -> str:
        raw = value.value
        if raw is None or isinstance(raw, bool):
            return "null" if raw is None else str(raw).lower()
        noun = "string" if isinstance(raw, str) else "number"
        return f"the {noun} {self._source(value.pos, value.length)}"

    def _mismatch(self, field: _Field, value: _Value) -> QueryError:
        label = self._source(field.pos, field.length)
        return self._error(
            f"cannot compare '{label}' ({self._field_kind(field)}) with {self._describe(value)}",
            value.pos,
            value.length,
        )

    def _operand(self, field: _Field, node: _Compare, value: _Value) -> _Operand:
        """Pick the column a literal is compared with and convert the literal for it."""
        raw = value.value
        if field.kind in ("param", "output"):  # outputs: JSON values, kept as params are
            if isinstance(raw, bool) or raw is None:
                return _Operand("p.value_json", nullable=False, value=json.dumps(raw))
            if isinstance(raw, str):
                return _Operand("p.text", nullable=True, value=raw)
            return _Operand("p.num", nullable=True, value=raw)
        if field.kind == "metric":
            column = f"m.{field.aggregate}"
            nullable = field.aggregate != "count"
            if raw is None:
                return _Operand(column, nullable, value=None)
            if isinstance(raw, bool | str):
                raise self._mismatch(field, value)
            return _Operand(column, nullable, value=raw)
        attr = _ATTRS[field.name]
        if raw is None:
            return _Operand(attr.column, attr.nullable, value=None)
        if isinstance(raw, bool):
            raise self._mismatch(field, value)
        if attr.kind == "text":
            if not isinstance(raw, str):
                raise self._mismatch(field, value)
            if field.name == "status" and node.op != "~" and raw not in _STATUSES:
                raise self._error(
                    f"unknown status '{raw}' (statuses: {', '.join(_STATUSES)})",
                    value.pos,
                    value.length,
                )
            return _Operand(attr.column, attr.nullable, value=raw)
        if isinstance(raw, str):
            seconds = self._time(raw) if attr.kind == "time" else _parse_duration(raw)
            if seconds is None:
                expected = (
                    'an ISO 8601 date or datetime such as "2024-05-01" or '
                    '"2024-05-01T12:30:00", or a relative time such as "7d ago"'
                    if attr.kind == "time"
                    else 'seconds or a duration such as "90s", "30m" or "1h30m"'
                )
                what = "time" if attr.kind == "time" else "duration"
                raise self._error(
                    f"invalid {what} {self._source(value.pos, value.length)}; expected {expected}",
                    value.pos,
                    value.length,
                )
            return _Operand(attr.column, attr.nullable, value=seconds)
        return _Operand(attr.column, attr.nullable, value=raw)

    def _time(self, text: str) -> float | None:
        stripped = text.strip().lower()
        if stripped == "now":
            return self._now
        if stripped.endswith("ago"):
            span = _parse_duration(stripped[: -len("ago")])
            return None if span is None else self._now - span
        return _parse_iso(text.strip())


@frozen
class _Operand:
    """A literal resolved against a field: the column it meets and the bound value."""

    column: str
    nullable: bool  # the column can hold NULL, so comparisons must not yield NULL
    value: object  # None means SQL NULL


# The index table of each keyed field, and the alias that conditions on it use.
_KEYED_TABLES: Final[dict[str, tuple[str, str]]] = {
    "metric": ("metrics", "m"),
    "param": ("params", "p"),
    "output": ("outputs", "p"),
}


def _keyed_exists(field: _Field, condition: str) -> str:
    # Correlated on (run_id, key), which both the primary keys and the *_key indexes
    # cover, so each run costs one index probe rather than a scan of the child table.
    table, alias = _KEYED_TABLES[field.kind]
    where = f"{alias}.run_id = runs.id AND {alias}.key = ?"
    if condition != "1":
        where += f" AND {condition}"
    return f"EXISTS (SELECT 1 FROM {table} {alias} WHERE {where})"


def _definite(sql: str, nullable: bool) -> str:
    # A comparison with a NULL column yields NULL, and NOT NULL is still NULL; folding it
    # to 0 keeps `not (...)` an exact complement.
    return f"COALESCE({sql}, 0)" if nullable else sql


def _condition(op: str, operands: Sequence[_Operand]) -> _Sql:
    """SQL for one comparison whose result is always 0 or 1, never NULL."""
    if op in ("in", "not in"):
        groups: dict[str, list[_Operand]] = {}
        for operand in operands:
            key = operand.column if operand.value is not None else f"{operand.column} NULL"
            groups.setdefault(key, []).append(operand)
        parts: list[str] = []
        params: list[object] = []
        for members in groups.values():
            first = members[0]
            if first.value is None:
                parts.append(f"{first.column} IS NULL")
                continue
            marks = ", ".join("?" for _ in members)
            parts.append(_definite(f"{first.column} IN ({marks})", first.nullable))
            params.extend(member.value for member in members)
        sql = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
        return (f"NOT ({sql})" if op == "not in" else sql), params
    (operand,) = operands
    column = operand.column
    if operand.value is None:
        return f"{column} IS {'NOT ' if op == '!=' else ''}NULL", []
    if op == "==":
        return f"{column} {'IS' if operand.nullable else '='} ?", [operand.value]
    if op == "!=":
        return f"{column} {'IS NOT' if operand.nullable else '!='} ?", [operand.value]
    sql_op = "GLOB" if op == "~" else op
    return _definite(f"{column} {sql_op} ?", operand.nullable), [operand.value]


def _parse_duration(text: str) -> float | None:
    """Seconds in strings like "90s", "1h", "1h30m"; None when it is not one."""
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _SPAN.findall(text))


def _parse_iso(text: str) -> float | None:
    """Unix seconds of an ISO 8601 date or datetime; naive means UTC."""
    if text[-1:] in ("Z", "z"):  # fromisoformat() only learned "Z" in Python 3.11
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# --- public API -------------------------------------------------------------------------


def compile_where(where: str | None, *, now: float | None = None) -> tuple[str, list[object]]:
    """Compile a filter into an SQL boolean expression over `runs` and its parameters.

    The expression is meant for `SELECT ... FROM runs WHERE <expr>`; every value in it is a
    `?` parameter, in order.

    Args:
        where: the filter, in the language described in this module's docstring. None or
            blank matches every run.
        now: unix seconds that relative times ("7d ago") count back from; defaults to the
            current time, and exists so callers and tests can pin it.

    Raises:
        QueryError: the filter does not parse or compares incompatible things; `position`
            and `length` point at the offending token.

    Example:
        >>> compile_where('status in ("failed", "crashed")')
        ('runs.status IN (?, ?)', ['failed', 'crashed'])
    """
    if where is None or not where.strip():
        return "1", []
    try:
        tree = _Parser(where).parse_where()
        return _Compiler(where, time.time() if now is None else now).node(tree)
    except RecursionError:
        # Only thousands of nested "(" or "not" get here; say so instead of crashing.
        raise QueryError("query nests too deeply", query=where, position=0) from None


def check_keys(where: str | None, known: Mapping[str, Collection[str]]) -> None:
    """Refuse a filter that compares a metric or param key no run has: a typo
    (`metrics.los < 1`) would otherwise match nothing, silently.

    `exists(...)` is left alone: asking whether a key exists is its whole point.

    Args:
        where: the filter, as for `compile_where`.
        known: "metric", "param" and "output" -> the keys that some run of the store has.

    Raises:
        QueryError: the first unknown key, with the closest known ones, pointed at.

    Example:
        >>> check_keys("metrics.los < 1", {"metric": ["loss"], "param": []})
        Traceback (most recent call last):
        polytrack.errors.QueryError: no run has the metric 'los' (did you mean 'loss'?)...
    """
    if where is None or not where.strip():
        return
    try:
        tree = _Parser(where).parse_where()
    except RecursionError:
        raise QueryError("query nests too deeply", query=where, position=0) from None
    for field in _compared_fields(tree):
        if field.kind not in ("metric", "param", "output"):
            continue
        keys = known.get(field.kind, ())
        if field.name in keys:
            continue
        close = difflib.get_close_matches(field.name, list(keys), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise QueryError(
            f"no run has the {field.kind} {field.name!r}{hint}",
            query=where,
            position=field.pos,
            length=field.length,
        )


def _compared_fields(node: _Node) -> Iterator[_Field]:
    """The fields a filter compares, in the order written (not those under exists())."""
    if isinstance(node, _BoolOp):
        for operand in node.operands:
            yield from _compared_fields(operand)
    elif isinstance(node, _Not):
        yield from _compared_fields(node.operand)
    elif isinstance(node, _Compare):
        yield node.field


def compile_order_by(order_by: str | Sequence[str] | None) -> tuple[str, list[object]]:
    """Compile sort keys into an ORDER BY body (without the words ORDER BY) and parameters.

    Missing values sort last in both directions and `runs.id` is always the final key, so
    paging through results never shows a run twice or skips one.

    Args:
        order_by: a comma-separated string (`"-metrics.acc, name"`) or a list of terms;
            a leading `-` sorts descending. None, blank or empty means newest first.

    Raises:
        QueryError: a term names an unknown field, `tags`, or does not parse. For a list,
            `query` is the offending term and `position` is relative to it.

    Example:
        >>> compile_order_by("-name, created")
        ('runs.name DESC NULLS LAST, runs.created_at ASC NULLS LAST, runs.id', [])
    """
    if order_by is None:
        return _DEFAULT_ORDER, []
    if isinstance(order_by, str):
        if not order_by.strip():
            return _DEFAULT_ORDER, []
        terms = _Parser(order_by).parse_order(single=False)
    else:
        if not order_by:
            return _DEFAULT_ORDER, []
        terms = [term for text in order_by for term in _Parser(text).parse_order(single=True)]
    parts: list[str] = []
    params: list[object] = []
    for field, descending in terms:
        direction = "DESC" if descending else "ASC"
        for expression, expression_params in _sort_keys(field):
            parts.append(f"{expression} {direction} NULLS LAST")
            params.extend(expression_params)
    parts.append(_TIE_BREAKER)
    return ", ".join(parts), params


def _sort_keys(field: _Field) -> list[_Sql]:
    """The SQL expressions a field sorts by; params need two, numbers before strings."""
    if field.kind == "attr":
        return [(_ATTRS[field.name].column, [])]
    if field.kind == "metric":
        return [(_scalar("metrics", "m", field.aggregate), [field.name])]
    table = _KEYED_TABLES[field.kind][0]
    return [
        (_scalar(table, "p", "num"), [field.name]),
        (_scalar(table, "p", "text"), [field.name]),
    ]


def _scalar(table: str, alias: str, column: str) -> str:
    return (
        f"(SELECT {alias}.{column} FROM {table} {alias} "
        f"WHERE {alias}.run_id = runs.id AND {alias}.key = ?)"
    )
