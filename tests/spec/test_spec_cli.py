"""`polytrack check`: prints the resolved spec, notes on stderr, errors as exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from attrs import frozen

from polytrack.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "polyaxonfiles"


@frozen
class Result:
    code: int
    out: str
    err: str


def check(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", *argv], stdout=out, stderr=err, environ={})
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def test_check_prints_the_resolved_spec_as_yaml() -> None:
    """Valid: exit 0, the resolved Polyaxonfile on stdout, a note on stderr."""
    result = check("-f", "job.yaml", "-P", "data=s3://acme/mnist", "-P", "lr=0.2")
    assert result.code == EXIT_OK, result.err
    document = yaml.safe_load(result.out)
    assert list(document)[:3] == ["version", "kind", "name"]
    assert document["params"]["lr"] == {"value": 0.2, "toEnv": "LEARNING_RATE"}
    container = document["component"]["run"]["container"]
    assert container["args"][0] == "--lr=0.2"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert result.err == "valid: a job run\n"


def test_check_writes_multi_line_text_as_blocks(tmp_path: Path) -> None:
    """A file init's content prints as a YAML literal block, as it was written."""
    result = check("-f", "job.yaml", "-P", "data=s3://a/b", "-o", "yaml")
    assert 'content: \'{"lr": 0.01' in result.out
    path = tmp_path / "script.yaml"
    path.write_text(
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  init:\n"
        '    - file: {content: "line 1\\nline 2\\n"}\n  container: {image: x}\n'
    )
    assert "content: |\n" in check("-f", str(path)).out


def test_check_json_output() -> None:
    """`-o json` prints the same document as JSON."""
    result = check("-f", "matrix-grid.yaml", "-o", "json")
    assert result.code == EXIT_OK
    document = json.loads(result.out)
    assert document["matrix"]["kind"] == "grid"
    assert result.err.splitlines() == [
        "valid: a job run",
        "matrix grid: 72 runs over dropout, layers, lr, optimizer, width",
    ]


def test_check_applies_presets_in_order() -> None:
    """`-f main -f preset` merges the preset: its queue and runPatch show in the output."""
    result = check("-f", "job.yaml", "-f", "preset-gpu.yaml")
    document = yaml.safe_load(result.out)
    assert document["queue"] == "agent-2/a100"
    assert document["component"]["run"]["environment"]["nodeSelector"] == {
        "pool": "gpu",
        "gpu": "a100",
    }


def test_check_notes_dags_and_tuners() -> None:
    """The notes give a DAG's order and say when a tuner chooses the matrix runs."""
    assert check("-f", "dag.yaml").err.splitlines() == [
        "valid: a dag run",
        "dag: 5 operations, in order prepare -> train -> evaluate -> notify + report",
    ]
    assert check("-f", "matrix-tuners.yaml").err.splitlines()[1] == (
        "matrix bayes over dropout, lr: a tuner picks the runs"
    )


def test_invalid_file_exits_1_with_the_located_message() -> None:
    """An invalid Polyaxonfile: exit 1, `polytrack: error:` and the message on stderr."""
    result = check("-f", "invalid/bad-quantity.yaml")
    assert result.code == EXIT_ERROR
    assert result.out == ""
    assert result.err == (
        "polytrack: error: invalid/bad-quantity.yaml:14 run.container.resources.limits.cpu: "
        'expected a quantity, got "lots"\n'
    )


def test_missing_params_exit_1() -> None:
    """Required inputs without a value fail the check, naming them."""
    result = check("-f", "job.yaml")
    assert result.code == EXIT_ERROR
    assert "no value for the required input data (s3)" in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "job.yaml", "-P", "lr"], "argument -P/--param: expected NAME=VALUE, got 'lr'"),
        (["-f", "job.yaml", "-P", "=1"], "argument -P/--param: expected NAME=VALUE, got '=1'"),
        (
            ["-f", "job.yaml", "-P", "lr=1", "-P", "lr=2"],
            "argument -P/--param: lr is given twice",
        ),
        (["-P", "lr=1"], "the following arguments are required: -f/--file"),
        (["-f", "job.yaml", "-o", "xml"], "argument -o/--output: invalid choice: 'xml'"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    """Malformed or repeated -P, no -f, or an unknown format are usage errors."""
    result = check(*argv)
    assert result.code == EXIT_USAGE
    assert message in result.err


def test_missing_file_exits_1() -> None:
    """A Polyaxonfile that does not exist is an error naming it."""
    result = check("-f", "nowhere.yaml")
    assert result.code == EXIT_ERROR
    assert result.err == (
        "polytrack: error: nowhere.yaml: cannot read the file: No such file or directory\n"
    )
