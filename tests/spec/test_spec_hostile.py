"""Hostile Polyaxonfiles are refused with a located `SpecError`, quickly and in bounded memory.

A file that could exhaust memory or time if its bound broke (an alias bomb, a merge bomb,
a template asking for gigabytes) is loaded in a child process with its address space
capped and a timeout, so that a regression fails this test instead of the machine. The
rest fail fast when broken: `RecursionError` comes within a second.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polytrack import spec
from polytrack.cli import EXIT_ERROR, EXIT_OK, main
from polytrack.errors import SpecError
from polytrack.spec import _source
from polytrack.spec._yaml import MAX_BYTES, MAX_DEPTH, MAX_NUMBER_CHARS, MAX_REPEATED
from polytrack.spec.matrix import MAX_RUNS, MAX_VALUES

HEADER = "version: 1.1\nkind: component\n"
JOB = "run: {kind: job, container: {image: busybox}}\n"

# Loads argv[1] with the address space capped at 1 GiB and prints what it raised. The
# interpreter with polytrack.spec imported uses about 100 MiB of it.
_CHILD = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from polytrack import spec
    try:
        spec.check([sys.argv[1]])
    except BaseException as exc:
        print(type(exc).__name__, str(exc), sep=": ")
    else:
        print("loaded")
    """
)


def write(tmp_path: Path, text: str, name: str = "polyaxonfile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> SpecError:
    with pytest.raises(SpecError) as caught:
        spec.load([str(path)])
    return caught.value


def in_child(path: Path) -> str:
    """What checking `path` raises, or "loaded", in a child with bounded memory and time."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,  # a few seconds when it works; a broken bound fails here, not forever
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


LAUGHS_LINE = 8  # where `with_default()` writes the first item


def with_default(items: list[str]) -> str:
    """A component whose list input defaults to `items`, one YAML flow value per line."""
    declaration = "inputs:\n  - name: x\n    type: list\n    isOptional: true\n    value:\n"
    return HEADER + declaration + "".join(f"      - {item}\n" for item in items) + JOB


def laughs(levels: int, fanout: int = 9) -> str:
    """A billion-laughs component: each anchor is a list of `fanout` aliases of the last."""
    items = [f"&l0 [{', '.join(['lol'] * fanout)}]"]
    for level in range(1, levels):
        items.append(f"&l{level} [{', '.join([f'*l{level - 1}'] * fanout)}]")
    return with_default(items)


# -- aliases and merge keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (HEADER + "run: &run\n  kind: job\n  again: *run\n", 5),
        (HEADER + "run: &run [1, *run]\n", 3),
        (HEADER + "a: &a {b: [{c: *a}]}\n", 3),
    ],
    ids=["mapping", "list", "deeper"],
)
def test_a_recursive_alias_is_refused_at_its_line(tmp_path: Path, text: str, line: int) -> None:
    """A value that contains itself through an alias is refused, naming the alias's line."""
    error = refusal(write(tmp_path, text))
    assert error.line == line
    assert "a recursive alias: the value anchored at line" in error.reason


def test_a_recursive_merge_is_refused(tmp_path: Path) -> None:
    """A mapping that merges itself (`<<: *self`) is refused."""
    error = refusal(write(tmp_path, HEADER + "a: &a {x: 1, <<: *a}\n" + JOB))
    assert (error.line, error.reason) == (
        3,
        "a recursive merge: the mapping at line 3 merges itself",
    )


def test_a_billion_laughs_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Aliases of aliases (9**10 values) are refused at the alias that passes the bound."""
    path = write(tmp_path, laughs(10))
    # Levels 0 to 4 repeat 9**2 + ... + 9**5 values, under the bound; level 5 passes it.
    assert in_child(path) == (
        f"SpecError: {path}:{LAUGHS_LINE + 5}: aliases and merge keys repeat more than "
        f"{MAX_REPEATED:,} values (an alias bomb?); polytrack refuses such a file"
    )


def test_merges_of_merges_load_in_bounded_memory(tmp_path: Path) -> None:
    """Merging a mapping nine times over, eleven levels deep, keeps each merged key once.

    Merging that kept every merged pair (as PyYAML did before the fix for yaml/pyyaml#897)
    would hold 200 * 9**11 of them here.
    """
    keys = ", ".join(f"k{index}: {index}" for index in range(200))
    items = [f"&m0 {{{keys}}}"]
    for level in range(1, 12):
        items.append(f"&m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 9)}], z{level}: 1}}")
    assert in_child(write(tmp_path, with_default(items))) == "loaded"


def test_sharing_by_alias_within_the_bound_loads(tmp_path: Path) -> None:
    """Aliases that repeat a few values, as Polyaxonfiles use them, load as before."""
    operation = spec.load([str(write(tmp_path, laughs(3, fanout=3)))])
    assert operation.params["x"].value[2] == [[["lol"] * 3] * 3] * 3


def test_a_merge_key_is_overridden_by_the_mapping_own_keys(tmp_path: Path) -> None:
    """`<<: *base` then `name: b` gives b (YAML's merge key), not a duplicate-key error."""
    text = HEADER + textwrap.dedent(
        """\
        run:
          kind: job
          container: &main {image: busybox, name: main, args: ["a"]}
          sidecars:
            - <<: *main
              name: helper
            - <<: [{name: first, image: one}, {name: second, tty: true}]
        """
    )
    run = spec.load([str(write(tmp_path, text))]).component.run  # type: ignore[union-attr]
    helper, merged = run.sidecars  # type: ignore[union-attr]
    assert (helper.name, helper.image, helper.args) == ("helper", "busybox", ("a",))
    assert (merged.name, merged.image, merged.tty) == ("first", "one", True)


def test_an_explicit_duplicate_key_is_still_an_error(tmp_path: Path) -> None:
    """Merges aside, a mapping that repeats a key of its own is refused, as before."""
    error = refusal(write(tmp_path, HEADER + "run: {<<: {a: 1}, kind: job, kind: service}\n"))
    assert error.reason == 'duplicate key "kind" (first at line 3)'


def test_an_alias_as_a_key_is_refused_without_expanding_it(tmp_path: Path) -> None:
    """A list used as a key is named as such, not constructed."""
    error = refusal(write(tmp_path, HEADER + "a: &a [1, 2]\n? *a\n: 1\n" + JOB))
    # The line is where the list is written: PyYAML keeps no place for an alias as a key.
    assert (error.line, error.reason) == (3, "keys must be text, got a list in the document")


# -- nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "run: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "run: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n",
        "run:\n" + "- " * 3_000 + "x\n",
        "run:\n" + "".join(" " * depth + "k:\n" for depth in range(1, 1_000)),
    ],
    ids=["flow-lists", "flow-mappings", "block-lists", "block-mappings"],
)
def test_deep_nesting_is_refused_before_recursing(tmp_path: Path, body: str) -> None:
    """Flow or block nesting past MAX_DEPTH is refused at the line it passes the bound."""
    error = refusal(write(tmp_path, HEADER + body))
    assert error.reason.startswith(f"nested deeper than {MAX_DEPTH} levels")
    assert error.line is not None and 3 <= error.line <= MAX_DEPTH + 3


def test_nesting_stacked_through_aliases_is_refused(tmp_path: Path) -> None:
    """Aliases nesting one deep value inside another pass the bound only when built."""
    half = MAX_DEPTH // 2
    text = HEADER + f"a: &a {'[' * half}1{']' * half}\nb: &b {'[' * half}*a{']' * half}\nc: [*b]\n"
    error = refusal(write(tmp_path, text))
    assert error.reason.startswith(f"nested deeper than {MAX_DEPTH} levels")


def nested_input(levels: int) -> str:
    """A component whose input's default is `levels` deep; the file is `levels + 3` deep."""
    value = "{a: " * levels + "1" + "}" * levels
    return HEADER + textwrap.dedent(
        f"""\
        inputs:
          - {{name: x, type: dict, isOptional: true, value: {value}}}
        run: {{kind: job, container: {{image: busybox, args: ["--x={{{{ x }}}}"]}}}}
        """
    )


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_nesting_at_the_bound_passes_every_step(tmp_path: Path, output: str) -> None:
    """A file MAX_DEPTH deep is checked and printed, with stack to spare for the caller."""
    path = write(tmp_path, nested_input(MAX_DEPTH - 3))

    def deep(frames: int) -> int:  # as if called from deep inside an application
        if frames:
            return deep(frames - 1)
        return main(["check", "-f", str(path), "-o", output], stdout=out, stderr=err, environ={})

    out, err = io.StringIO(), io.StringIO()
    assert deep(sys.getrecursionlimit() // 2) == EXIT_OK, err.getvalue()
    assert out.getvalue().count('"a":' if output == "json" else "a:") >= MAX_DEPTH - 3


def test_nesting_one_past_the_bound_is_refused(tmp_path: Path) -> None:
    """One level more than MAX_DEPTH is refused."""
    error = refusal(write(tmp_path, nested_input(MAX_DEPTH - 2)))
    assert error.reason.startswith(f"nested deeper than {MAX_DEPTH} levels")


# -- size, encoding, scalars ---------------------------------------------------------------


def test_a_10_mb_file_is_refused_before_parsing(tmp_path: Path) -> None:
    """The size cap is checked first: an unparsable 10 MB file is refused for its size."""
    path = tmp_path / "big.yaml"
    path.write_bytes(HEADER.encode() + b"x: [" + b"1, " * 3_500_000 + b"\n")
    error = refusal(path)
    assert (error.file, error.line) == (str(path), None)
    assert error.reason.startswith(
        f"the file is {path.stat().st_size:,} bytes; polytrack reads Polyaxonfiles of at most "
        f"1 MiB ({MAX_BYTES:,} bytes)"
    )


def test_a_file_of_exactly_the_cap_is_read(tmp_path: Path) -> None:
    """MAX_BYTES is the last size read; one byte more is refused."""
    text = HEADER + JOB
    path = write(tmp_path, text + "#" * (MAX_BYTES - len(text) - 1) + "\n")
    assert path.stat().st_size == MAX_BYTES
    assert spec.load([str(path)]).component is not None
    with path.open("a") as stream:
        stream.write("\n")
    assert refusal(path).reason.startswith(f"the file is {MAX_BYTES + 1:,} bytes;")


def test_a_file_that_is_not_utf8_is_refused_at_the_line(tmp_path: Path) -> None:
    """A Latin-1 byte is named with its line."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(HEADER.encode() + b"description: caf\xe9\n" + JOB.encode())
    error = refusal(path)
    assert (error.line, error.reason) == (
        3,
        "cannot read the file: it is not UTF-8 text (byte 0xe9)",
    )


def test_a_lone_surrogate_is_refused_and_a_pair_joined(tmp_path: Path) -> None:
    """`"\\ud800"` is no character and is refused; `"\\ud83d\\ude00"` is one, as in JSON."""
    error = refusal(write(tmp_path, HEADER + 'description: "ok \\ud800"\n' + JOB))
    assert error.line == 3
    assert error.reason.startswith("text with a lone UTF-16 surrogate (\\ud800)")
    str(error).encode("utf-8")  # the message itself prints
    path = write(tmp_path, HEADER + 'description: "\\ud83d\\ude00"\n' + JOB)
    assert spec.load([str(path)]).description == "\U0001f600"


def test_a_control_character_is_refused_at_its_line(tmp_path: Path) -> None:
    """PyYAML names a control character's offset; the error names its line."""
    error = refusal(write(tmp_path, HEADER + JOB + "description: a\x07b\n"))
    assert error.line == 4
    assert error.reason.startswith("invalid YAML: the control character #x0007 is not allowed")


@pytest.mark.parametrize(
    "number",
    ["9" * 5_000, "0x" + "f" * 5_000, ":".join(["1"] * 5_000)],
    ids=["decimal", "hex", "base-60"],
)
def test_a_huge_integer_is_refused(tmp_path: Path, number: str) -> None:
    """Integers longer than MAX_NUMBER_CHARS are refused before `int()` is called."""
    error = refusal(write(tmp_path, HEADER + JOB + f"description: {number}\n"))
    assert error.line == 4
    assert error.reason.startswith(f"an integer of {len(number):,} characters")


def test_an_integer_at_the_bound_is_read(tmp_path: Path) -> None:
    """A MAX_NUMBER_CHARS-digit integer is a number as any other."""
    text = HEADER + "inputs: [{name: n, type: int}]\n" + JOB
    path = write(tmp_path, text + "isApproved: true\n")
    number = int("9" * MAX_NUMBER_CHARS)
    assert spec.load([str(path)], {"n": number}).params["n"].value == number


# -- fields of the wrong type --------------------------------------------------------------

DAG = HEADER + textwrap.dedent(
    """\
    run:
      kind: dag
      operations:
        - {name: a, dagRef: {dag_ref}}
      components:
        - {name: c, run: {kind: job, container: {image: busybox}}}
    """
)


@pytest.mark.parametrize("value", ["[1, 2]", "{a: 1}", "7"])
def test_dag_ref_that_is_not_text_is_refused(tmp_path: Path, value: str) -> None:
    """`dagRef: [1, 2]` is a located error, not `TypeError: unhashable type`."""
    error = refusal(write(tmp_path, DAG.replace("{dag_ref}", value)))
    assert (error.line, error.path) == (6, "run.operations[0].dagRef")
    assert error.reason.startswith("expected the name of a dag component, got")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (DAG.replace("name: a, dagRef: {dag_ref}", "name: [a], dagRef: c"), "run.operations[0]"),
        (DAG.replace("{name: c,", "{name: {c: 1},").replace("{dag_ref}", "c"), "run.components[0]"),
        (DAG.replace("dagRef: {dag_ref}", "pathRef: [a.yaml]"), "run.operations[0].pathRef"),
        (
            DAG.replace("{dag_ref}", "c, patchStrategy: [replace]"),
            "run.operations[0].patchStrategy",
        ),
        (HEADER.replace("component", "[component]") + JOB, "kind"),
        (HEADER.replace("1.1", "[1.1]") + JOB, "version"),
        (HEADER + "name: {a: 1}\n" + JOB, "name"),
    ],
    ids=["op-name", "component-name", "path-ref", "patch-strategy", "kind", "version", "name"],
)
def test_fields_that_take_text_refuse_lists_and_mappings(
    tmp_path: Path, text: str, path: str
) -> None:
    """Names, kinds, refs and strategies given a list or a mapping are located errors."""
    assert refusal(write(tmp_path, text)).path == path


# -- pathRef -------------------------------------------------------------------------------


def dag_of(path_ref: str) -> str:
    return HEADER + f"run:\n  kind: dag\n  operations:\n    - {{name: a, pathRef: {path_ref}}}\n"


def test_a_path_ref_cycle_is_refused(tmp_path: Path) -> None:
    """A DAG whose operation points back at a file being read is refused, with the chain."""
    write(tmp_path, dag_of("b.yaml"), "a.yaml")
    write(tmp_path, dag_of("a.yaml"), "b.yaml")
    error = refusal(tmp_path / "a.yaml")
    assert error.reason == (
        f"pathRef leads back to a file that refers to it: {tmp_path}/a.yaml -> "
        f"{tmp_path}/b.yaml -> {tmp_path}/a.yaml"
    )
    assert (error.file, error.line) == (f"{tmp_path}/b.yaml", 6)


def test_a_long_path_ref_chain_is_refused(tmp_path: Path) -> None:
    """pathRef files nested more than 8 deep are refused before the stack runs out."""
    for index in range(30):
        write(tmp_path, dag_of(f"c{index + 1}.yaml"), f"c{index}.yaml")
    error = refusal(tmp_path / "c0.yaml")
    assert error.reason == "pathRef components nested more than 8 files deep"


def test_dag_fan_out_past_the_copy_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operations repeating a big component are refused past MAX_COPIED copied values.

    The bound is lowered for the test: reaching two million copies takes seconds.
    """
    env = "".join(f"          - {{name: E{index}, value: v}}\n" for index in range(100))

    def fan_out(count: int) -> Path:
        operations = "".join(f"    - {{name: op{index}, dagRef: c}}\n" for index in range(count))
        text = (
            f"{HEADER}run:\n  kind: dag\n  operations:\n{operations}  components:\n"
            f"    - name: c\n      run:\n        kind: job\n        container:\n"
            f"          image: busybox\n          env:\n{env}"
        )
        return write(tmp_path, text)

    monkeypatch.setattr(_source, "MAX_COPIED", 10_000)
    assert spec.load([str(fan_out(5))]).component is not None
    error = refusal(fan_out(50))
    assert error.reason.startswith("resolving this Polyaxonfile copies more than 10,000 values")


# -- matrices ------------------------------------------------------------------------------


def with_matrix(matrix: str) -> str:
    return textwrap.dedent(
        """\
        version: 1.1
        kind: operation
        matrix: {matrix}
        component:
          inputs: [{{name: lr, type: float}}, {{name: n, type: int, isOptional: true}}]
          run: {{kind: job, container: {{image: busybox}}}}
        """
    ).format(matrix=matrix)


@pytest.mark.parametrize(
    ("matrix", "reason"),
    [
        (
            "{kind: grid, params: {lr: {kind: range, value: '0:1000000000000:1'}}}",
            f"the range gives 1,000,000,000,000 values; a space gives at most {MAX_VALUES:,}",
        ),
        (
            "{kind: grid, params: {lr: {kind: linspace, value: [0, 1, 1000000000]}}}",
            f"the space gives 1,000,000,000 values; a space gives at most {MAX_VALUES:,}",
        ),
        (
            "{kind: grid, params: {lr: {kind: linspace, value: [0, 1, 1000]},"
            " n: {kind: range, value: [0, 1000, 1]}}}",
            f"the grid has 1,000,000 runs; a matrix expands to at most {MAX_RUNS:,} "
            f"(set numRuns to run the first ones)",
        ),
        (
            "{kind: random, numRuns: 1000000000000, params: {lr: {kind: uniform, value: [0, 1]}}}",
            f"numRuns is 1,000,000,000,000; a matrix expands to at most {MAX_RUNS:,} runs",
        ),
        (
            "{kind: random, numRuns: 2, params: {lr: {kind: loguniform, value: [0, 1000]}}}",
            "exp(high) overflows a float",
        ),
        (
            "{kind: random, numRuns: 2, params: {lr: {kind: lognormal, value: [1.0e+30, 1]}}}",
            "exp of a draw overflows a float",
        ),
        (
            "{kind: random, numRuns: 2,"
            " params: {lr: {kind: uniform, value: [-1.0e+308, 1.0e+308]}}}",
            "high - low overflows a float",
        ),
        (
            "{kind: grid, params: {lr: {kind: logspace, value: [0, 1000, 3]}}}",
            "base ** stop overflows a float",
        ),
        (
            "{kind: grid, params: {lr: {kind: logspace, value: [0, 1, 3, -2]}}}",
            "base must be positive, got -2",
        ),
        (
            "{kind: grid, params: {lr: {kind: range, value: [0, " + "9" * 400 + ", 1]}}}",
            "expected a finite number, got " + "9" * 400,
        ),
    ],
)
def test_matrices_that_cannot_be_expanded_are_refused_on_load(
    tmp_path: Path, matrix: str, reason: str
) -> None:
    """Spaces, grids and draws too large for memory or for a float fail as the file loads."""
    error = refusal(write(tmp_path, with_matrix(matrix)))
    assert (error.line, error.reason) == (3, reason)


def test_a_grid_capped_by_num_runs_expands_only_those(tmp_path: Path) -> None:
    """numRuns caps a grid of 10**8 runs without building the rest of it."""
    text = with_matrix(
        "{kind: grid, numRuns: 3, params: {lr: {kind: linspace, value: [0, 1, 10000]},"
        " n: {kind: range, value: [0, 10000, 1]}}}"
    )
    path = write(tmp_path, text)
    assert in_child(path) == "loaded"  # `polytrack check` counts the runs by expanding them
    matrix = spec.load([str(path)]).matrix
    assert matrix is not None and len(spec.expand_matrix(matrix)) == 3


def test_a_large_random_search_draws_in_linear_time(tmp_path: Path) -> None:
    """Distinct draws are found by hashing, not by scanning every earlier run."""
    text = with_matrix(
        f"{{kind: random, numRuns: {MAX_RUNS}, seed: 1,"
        f" params: {{lr: {{kind: uniform, value: [0, 1]}}}}}}"
    )
    assert in_child(write(tmp_path, text)) == "loaded"  # `check` draws them to count them


# -- templates -----------------------------------------------------------------------------


def with_arg(template: str) -> str:
    return HEADER + f"run: {{kind: job, container: {{image: busybox, args: ['{template}']}}}}\n"


@pytest.mark.parametrize(
    "template",
    ["{{ " + "(" * 3_000 + "1" + ")" * 3_000 + " }}", "{{ 1" + " + 1" * 5_000 + " }}"],
    ids=["brackets", "operators"],
)
def test_a_deeply_nested_template_is_a_located_error(tmp_path: Path, template: str) -> None:
    """Jinja2's recursive parser and compiler give a located error, not RecursionError."""
    error = refusal(write(tmp_path, with_arg(template)))
    assert (error.line, error.path) == (3, "run.container.args[0]")
    assert error.reason.endswith("nested too deeply (brackets, operators or attributes)")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ('{{ "x" * 10**10 }}', "* would make 10,000,000,000 characters or items"),
        ("{{ 9 ** 999999999 }}", "9 ** 999999999 is too large"),
    ],
)
def test_a_template_that_asks_for_gigabytes_is_refused(
    tmp_path: Path, template: str, reason: str
) -> None:
    """`*` and `**` are bounded in the sandbox (and never folded while compiling)."""
    path = write(tmp_path, with_arg(template))
    assert in_child(path).startswith(
        f"SpecError: {path}:3 run.container.args[0]: cannot render {template}: {reason}"
    )


def test_bounded_operators_still_work(tmp_path: Path) -> None:
    """Ordinary uses of `*` and `**` render as before."""
    path = write(tmp_path, with_arg('{{ "ab" * 2 }}-{{ 2 ** 10 }}-{{ 3 * "c" }}-{{ 1.5 * 2 }}'))
    run = spec.load([str(path)]).component.run  # type: ignore[union-attr]
    assert run.container.args == ("abab-1024-ccc-3.0",)  # type: ignore[union-attr]


# -- the command line ----------------------------------------------------------------------

HOSTILE = {
    "recursive-alias": HEADER + "run: &run [1, *run]\n",
    "billion-laughs": laughs(7),
    "deep-flow": HEADER + "run: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "deep-block": HEADER + "run:\n" + "- " * 3_000 + "x\n",
    "dag-ref-list": DAG.replace("{dag_ref}", "[1, 2]"),
    "surrogate": HEADER + 'description: "\\udc80"\n' + JOB,
    "huge-int": HEADER + JOB + "description: " + "9" * 5_000 + "\n",
    "huge-range": with_matrix("{kind: grid, params: {lr: {kind: range, value: '0:1e15:1'}}}"),
    "deep-template": with_arg("{{ " + "[" * 3_000 + "]" * 3_000 + " }}"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_refuses_hostile_files_with_a_message_not_a_traceback(
    tmp_path: Path, name: str
) -> None:
    """`polytrack check`: exit 1 and one `polytrack: error: file:line` line per problem."""
    path = write(tmp_path, HOSTILE[name])
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", "-f", str(path)], stdout=out, stderr=err, environ={})
    assert (code, out.getvalue()) == (EXIT_ERROR, "")
    message = err.getvalue()
    assert message.startswith(f"polytrack: error: {path}:"), message
    assert "Traceback" not in message
    message.encode("utf-8")
