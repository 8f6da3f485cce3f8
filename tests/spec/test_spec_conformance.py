"""Conformance with Polyaxon 2.16.4 on the real Polyaxonfiles in ../shared/polyaxonfiles/.

The folder (18 files from polyaxon/cli's test fixtures, with the outcome Polyaxon's own
checker gives each; see its SOURCES.md) sits beside the repository. Each file must be OK,
need params (and render the given args once they are passed), or fail with a message at
least as clear as Polyaxon's, as the table says. Skipped where the folder is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from attrs import frozen

from polytrack import spec
from polytrack.errors import InvalidParamError, MissingParamsError, SpecError
from polytrack.spec import Job

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "polyaxonfiles"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is not here")


@frozen
class Ok:
    """Valid as it is."""


@frozen
class NeedsParams:
    """Valid, but required inputs need values; with `params`, the container gets `args`."""

    names: tuple[str, ...]
    params: Mapping[str, str]
    args: tuple[str, ...]
    bad: Mapping[str, str]
    bad_message: str


@frozen
class Fail:
    """Invalid: `message` is polytrack's, Polyaxon's is `theirs` (for the reader)."""

    message: str
    theirs: str


CONFORMANCE: dict[str, Ok | NeedsParams | Fail] = {
    "cli-simple-job.yaml": Ok(),
    "cli-job-init-git-dockerfile.yaml": Ok(),
    "cli-job-environment.yaml": Ok(),
    "cli-job-file-init-to-env.yaml": Ok(),
    "cli-operation-run-patch.yaml": Ok(),
    "cli-tfjob.yaml": Ok(),
    "cli-pytorchjob.yaml": Ok(),
    "cli-matrix-hyperband.yaml": Ok(),
    "cli-dag-simple.yaml": Ok(),
    "cli-dag-joins-hooks.yaml": Ok(),
    "cli-schedule-cron-dag.yaml": Ok(),
    "cli-required-inputs-as-arg.yaml": NeedsParams(
        names=("loss", "flag"),
        params={"loss": "foo", "flag": "True"},
        args=("video_prediction_train --loss=foo --flag",),
        bad={"loss": "foo", "flag": "notbool"},
        bad_message=(
            '-P flag=notbool: cannot convert "notbool" to bool (expected true or false); '
            'input "flag" is declared at {file}:11'
        ),
    ),
    "invalid-missing-version.yaml": Fail(
        '{file}:2: missing required field "version" (polytrack reads version 1.1)',
        theirs="The Polyaxonfile `version` must be specified.",
    ),
    "invalid-missing-kind.yaml": Fail(
        '{file}:2: missing required field "kind" (component or operation)',
        theirs="The Polyaxonfile `kind` must be specified.",
    ),
    "invalid-unsupported-version.yaml": Fail(
        "{file}:2 version: expected 1.1, got 0.4: polytrack reads version 1.1 of the "
        "Polyaxonfile specification",
        theirs="Your CLI support Polyaxonfile versions between: 1.1 <= v <= 1.1",
    ),
    "invalid-cyclic-dag.yaml": Fail(
        "{file}:13 run.operations[0].dependencies[0]: the operations form a cycle: "
        "A -> B -> A (each waits for the next)",
        theirs="Pipeline's graph is not acyclic.",
    ),
    "invalid-dag-no-operations.yaml": Fail(
        '{file}:10 run: missing required field "operations": a dag runs at least one operation',
        theirs="TypeError: 'NoneType' object is not iterable",
    ),
    "invalid-untyped-params.yaml": Fail(
        "{file}:2 version: expected 1.1, got 1.0: polytrack reads version 1.1 of the "
        "Polyaxonfile specification",
        theirs="version not supported",
    ),
}


def test_the_table_covers_the_folder() -> None:
    """Every Polyaxonfile in the shared folder has an expected outcome here."""
    assert {path.name for path in SHARED.glob("*.yaml")} == set(CONFORMANCE)


@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_polyaxonfile_outcome_matches_polyaxon(name: str) -> None:
    """Each file is OK, needs params, or fails with a clear located message."""
    path = SHARED / name
    expected = CONFORMANCE[name]
    if isinstance(expected, Ok):
        report = spec.check([path])
        assert report.operation.component is not None
    elif isinstance(expected, NeedsParams):
        with pytest.raises(MissingParamsError) as missing:
            spec.load([path])
        assert missing.value.names == expected.names
        operation = spec.load([path], expected.params)
        assert operation.component is not None and isinstance(operation.component.run, Job)
        assert operation.component.run.container is not None
        assert operation.component.run.container.args == expected.args
        with pytest.raises(InvalidParamError) as invalid:
            spec.load([path], expected.bad)
        assert str(invalid.value) == expected.bad_message.format(file=path)
    else:
        with pytest.raises(SpecError) as failed:
            spec.load([path])
        assert str(failed.value) == expected.message.format(file=path)


def test_resolved_details_of_real_files() -> None:
    """Spot checks: runPatch lands in the run, file-init templates render what they can."""
    patched = spec.load([SHARED / "cli-operation-run-patch.yaml"])
    assert patched.component is not None and isinstance(patched.component.run, Job)
    environment = patched.component.run.environment
    assert environment is not None
    assert environment.annotations == {"tf-version.cloud-tpus.google.com": "2.2"}
    assert patched.plugins is not None and patched.plugins.collect_artifacts is False

    templated = spec.load([SHARED / "cli-job-file-init-to-env.yaml"])
    assert templated.component is not None and isinstance(templated.component.run, Job)
    init = templated.component.run.init
    assert init is not None and init[0].file is not None
    assert init[0].file.content == (
        'print("23423")\n'
        'print("{}".format(foo))\n'
        'print("image: {{ connections[params.dest.connection].url }}/image:tag "))\n'
    )
    assert templated.params["param1"].to_env == "ENV_NAME_PARAM1"
    assert templated.params["dest"].connection == "registry"
