"""Invalid Polyaxonfiles: every message names file, line and field path, and says what was
expected. One fixture per mistake under tests/fixtures/polyaxonfiles/invalid/."""

from __future__ import annotations

from pathlib import Path

import pytest

from polytrack import spec
from polytrack.errors import (
    DagCycleError,
    InvalidParamError,
    MissingParamsError,
    PolytrackError,
    SpecError,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "polyaxonfiles"

# fixture -> the whole message `load()` raises, and the class it raises.
ERRORS: dict[str, tuple[type[SpecError], str]] = {
    "bad-quantity.yaml": (
        SpecError,
        'bad-quantity.yaml:14 run.container.resources.limits.cpu: expected a quantity, got "lots"',
    ),
    "negative-quantity.yaml": (
        SpecError,
        "negative-quantity.yaml:7 run.container.resources.requests.memory: "
        'expected a non-negative quantity, got "-1Gi"',
    ),
    "unknown-field.yaml": (
        SpecError,
        "unknown-field.yaml:5 run.contianer: unknown field (expected one of: connections, "
        "container, environment, init, kind, sidecars, volumes)",
    ),
    "wrong-type.yaml": (
        SpecError,
        'wrong-type.yaml:5 run.replicas: expected an integer of at least 1, got "3"',
    ),
    "args-not-strings.yaml": (
        SpecError,
        "args-not-strings.yaml:7 run.container.args[1]: expected a string, got 0.1 (quote it)",
    ),
    "missing-image.yaml": (
        SpecError,
        'missing-image.yaml:5 run.container: missing required field "image"',
    ),
    "missing-run.yaml": (SpecError, 'missing-run.yaml:1: missing required field "run"'),
    "unknown-run-kind.yaml": (
        SpecError,
        "unknown-run-kind.yaml:4 run.kind: expected one of job, service, tfjob, pytorchjob, "
        'mpijob, daskcluster, raycluster, dag, got "sparkjob"',
    ),
    "tfjob-no-replicas.yaml": (
        SpecError,
        "tfjob-no-replicas.yaml:3 run: a tfjob needs at least one replica spec "
        "(chief, ps, worker, evaluator)",
    ),
    "bad-version.yaml": (
        SpecError,
        "bad-version.yaml:1 version: expected 1.1, got 1.2: polytrack reads version 1.1 of the "
        "Polyaxonfile specification",
    ),
    "bad-kind.yaml": (
        SpecError,
        'bad-kind.yaml:2 kind: expected one of component, operation, got "job"',
    ),
    "not-a-mapping.yaml": (
        SpecError,
        "not-a-mapping.yaml:1: expected a mapping of sections, got a list",
    ),
    "bad-yaml.yaml": (
        SpecError,
        "bad-yaml.yaml:6: invalid YAML: expected ',' or '}', but got '<stream end>'",
    ),
    "duplicate-key.yaml": (
        SpecError,
        'duplicate-key.yaml:6: duplicate key "run" (first at line 3)',
    ),
    "init-two-handlers.yaml": (
        SpecError,
        "init-two-handlers.yaml:6 run.init[0]: set only one handler per init entry, "
        "got git and dockerfile",
    ),
    "git-without-url.yaml": (
        SpecError,
        "git-without-url.yaml:6 run.init[0].git: a git init without a url needs a connection "
        "to clone from",
    ),
    "bad-restart-policy.yaml": (
        SpecError,
        "bad-restart-policy.yaml:6 run.environment.restartPolicy: expected one of Always, "
        'OnFailure, Never, got "Sometimes"',
    ),
    "bad-toleration.yaml": (
        SpecError,
        "bad-toleration.yaml:7 run.environment.tolerations[0].operator: expected one of Exists, "
        'Equal, got "Exist"',
    ),
    "bad-termination.yaml": (
        SpecError,
        "bad-termination.yaml:4 termination.maxRetries: expected an integer of at least 0, got -1",
    ),
    "bad-hook-trigger.yaml": (
        SpecError,
        "bad-hook-trigger.yaml:4 hooks[0].trigger: expected one of succeeded, failed, stopped, "
        'done, got "crashed"',
    ),
    "reserved-input-name.yaml": (
        SpecError,
        'reserved-input-name.yaml:4 inputs[0].name: "globals" is taken by the template context '
        "(globals, params, connections); choose another name",
    ),
    "unknown-input-type.yaml": (
        SpecError,
        'unknown-input-type.yaml:4 inputs[0].type: unknown type "flaot" (expected one of any, '
        "int, float, bool, str, dict, list, path, uri, auth, image, event, metric, metadata, "
        "date, datetime, s3, gcs, wasb, git, artifacts, dockerfile, file, tensorboard)",
    ),
    "flag-not-bool.yaml": (
        SpecError,
        'flag-not-bool.yaml:4 inputs[0].isFlag: isFlag needs type bool, got "int"',
    ),
    "required-with-default.yaml": (
        SpecError,
        "required-with-default.yaml:4 inputs[0].value: a default value makes sense only for an "
        "optional input: add isOptional: true or remove the value",
    ),
    "bad-default.yaml": (
        SpecError,
        'bad-default.yaml:4 inputs[0].value: cannot convert "ten" to int',
    ),
    "duplicate-input.yaml": (
        SpecError,
        'duplicate-input.yaml:6 outputs[0].name: "lr" is declared twice among inputs and outputs',
    ),
    "bad-param-value.yaml": (
        InvalidParamError,
        'bad-param-value.yaml:4 params.data.value: cannot convert "/local/path" to s3 '
        '(expected "s3://bucket/key")',
    ),
    "failed-validation.yaml": (
        InvalidParamError,
        "failed-validation.yaml:4 params.epochs.value: expected a value of at least 1, got 0",
    ),
    "unexpected-param.yaml": (
        SpecError,
        "unexpected-param.yaml:5 params.momentum: unexpected param: the component has no input "
        'or output "momentum" (it has lr); mark it contextOnly to pass it to templates only',
    ),
    "unknown-template-name.yaml": (
        SpecError,
        'unknown-template-name.yaml:9 run.container.args[0]: unknown name "learning_rate" in '
        "{{ learning_rate }} (known: artifacts, connections, dag, globals, init, inputs, lr, "
        "ops, outputs, params, runs)",
    ),
    "unsafe-template.yaml": (
        SpecError,
        "unsafe-template.yaml:7 run.container.args[0]: cannot render {{ ''.__class__.__mro__ }}: "
        "access to attribute '__class__' of 'str' object is unsafe.",
    ),
    "template-syntax.yaml": (
        SpecError,
        "template-syntax.yaml:9 run.container.args[0]: invalid template {{ lr + }}: "
        "unexpected 'end of print statement'",
    ),
    "grid-distribution.yaml": (
        SpecError,
        "grid-distribution.yaml:6 matrix.params.lr.kind: a grid search takes discrete values "
        "(choice, range, linspace, logspace, geomspace), got uniform; use kind: random for "
        "distributions",
    ),
    "random-without-runs.yaml": (
        SpecError,
        'random-without-runs.yaml:3 matrix: missing required field "numRuns"',
    ),
    "pchoice-over-one.yaml": (
        SpecError,
        "pchoice-over-one.yaml:7 matrix.params.act.value: the probabilities add up to 1.2, "
        "more than 1",
    ),
    "bad-range.yaml": (
        SpecError,
        "bad-range.yaml:6 matrix.params.layers.value: expected 3 values [start, stop, step], got 2",
    ),
    "unknown-distribution.yaml": (
        SpecError,
        "unknown-distribution.yaml:7 matrix.params.lr.kind: expected one of choice, pchoice, "
        "range, linspace, logspace, geomspace, uniform, quniform, loguniform, qloguniform, "
        'normal, qnormal, lognormal, qlognormal, got "gaussian"',
    ),
    "matrix-type-mismatch.yaml": (
        SpecError,
        'matrix-type-mismatch.yaml:6 matrix.params.epochs.value[1]: cannot convert "twenty" to int',
    ),
    "bad-cron.yaml": (
        SpecError,
        'bad-cron.yaml:5 schedule.cron: expected a cron expression like "0 0 * * *" '
        '(minute hour day month weekday), got "every night"',
    ),
    "two-refs.yaml": (
        SpecError,
        "two-refs.yaml:1: set exactly one of component, pathRef, dagRef, hubRef, urlRef "
        "(got component, pathRef)",
    ),
    "operation-without-component.yaml": (
        SpecError,
        "operation-without-component.yaml:1: an operation runs a component: put run, inputs "
        "and outputs under component:",
    ),
    "hub-ref.yaml": (
        SpecError,
        "hub-ref.yaml:3 hubRef: polytrack cannot fetch hubRef components; inline the component "
        "(component:) or point at its file (pathRef:)",
    ),
    "path-ref-missing.yaml": (
        SpecError,
        "path-ref-missing.yaml:3 pathRef: no component file at ../components/nowhere.yaml",
    ),
    "run-patch-kind.yaml": (
        SpecError,
        'run-patch-kind.yaml:4 runPatch.kind: runPatch cannot change the run kind "job" '
        'to "service"',
    ),
    "dag-cycle.yaml": (
        DagCycleError,
        "dag-cycle.yaml:6 run.operations[0].dependencies[0]: the operations form a cycle: "
        "fetch -> publish -> train -> fetch (each waits for the next)",
    ),
    "dag-implied-cycle.yaml": (
        DagCycleError,
        "dag-implied-cycle.yaml:9 run.operations[0].params.x: the operations form a cycle: "
        "a -> b -> a (each waits for the next)",
    ),
    "dag-unknown-dependency.yaml": (
        SpecError,
        "dag-unknown-dependency.yaml:7 run.operations[1].dependencies[0]: unknown operation "
        '"trian" (the dag has train, evaluate)',
    ),
    "dag-missing-component.yaml": (
        SpecError,
        'dag-missing-component.yaml:6 run.operations[0].dagRef: no component named "trainer" '
        "in the dag's components (it has step)",
    ),
    "dag-duplicate-operation.yaml": (
        SpecError,
        'dag-duplicate-operation.yaml:7 run.operations[1].name: operation "train" is defined twice',
    ),
    "dag-missing-param.yaml": (
        MissingParamsError,
        "dag-missing-param.yaml:6 run.operations[0]: no value for the required input lr (float) "
        'of component "step": pass it under the operation\'s params',
    ),
}

# Presets are checked as the second file, after a valid Polyaxonfile.
PRESET_ERRORS: dict[str, str] = {
    "preset-with-component.yaml": (
        "preset-with-component.yaml:1 component: a preset patches the operation it is given "
        "with; it cannot set the component (use runPatch to change its run)"
    ),
    "bad-patch-strategy.yaml": (
        "bad-patch-strategy.yaml:1 patchStrategy: expected one of post_merge, pre_merge, "
        'replace, isnull, got "merge"'
    ),
}


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages name files as given; relative names keep the expected texts short.
    monkeypatch.chdir(FIXTURES / "invalid")


def test_every_invalid_fixture_has_its_message() -> None:
    """The table covers every file in invalid/, so a new fixture cannot go unasserted."""
    names = {path.name for path in (FIXTURES / "invalid").glob("*.yaml")}
    assert names == set(ERRORS) | set(PRESET_ERRORS)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_invalid_polyaxonfile_fails_with_located_message(name: str) -> None:
    """Each invalid fixture raises its error class with the exact file:line path: message."""
    error_class, message = ERRORS[name]
    with pytest.raises(SpecError) as caught:
        spec.load([name])
    assert type(caught.value) is error_class
    assert str(caught.value) == message
    assert isinstance(caught.value, PolytrackError | ValueError)


@pytest.mark.parametrize("name", sorted(PRESET_ERRORS))
def test_invalid_preset_fails_with_located_message(name: str) -> None:
    """A broken preset is reported in the preset's own file, not the Polyaxonfile's."""
    with pytest.raises(SpecError) as caught:
        spec.load(["../service.yaml", name])
    assert str(caught.value) == PRESET_ERRORS[name]


def test_error_carries_file_line_path_and_reason() -> None:
    """A SpecError's parts are attributes too, for tools that place the message themselves."""
    with pytest.raises(SpecError) as caught:
        spec.load(["bad-quantity.yaml"])
    error = caught.value
    assert (error.file, error.line, error.path) == (
        "bad-quantity.yaml",
        14,
        "run.container.resources.limits.cpu",
    )
    assert error.reason == 'expected a quantity, got "lots"'
    assert error.problems == (error,)


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    """Independent mistakes are all reported, one per line, ordered by line."""
    path = tmp_path / "many.yaml"
    path.write_text(
        "version: 1.1\n"
        "kind: component\n"
        "termination: {ttl: soon}\n"
        "run:\n"
        "  kind: job\n"
        "  container: {image: x, imagePullPolicy: Sometimes}\n"
        "  environment: {priority: high}\n"
    )
    with pytest.raises(SpecError) as caught:
        spec.load([path])
    lines = str(caught.value).replace(f"{path}:", "").splitlines()
    assert lines == [
        '3 termination.ttl: expected an integer of at least 0, got "soon"',
        "6 run.container.imagePullPolicy: expected one of Always, IfNotPresent, Never, "
        'got "Sometimes"',
        '7 run.environment.priority: expected an integer, got "high"',
    ]
    assert len(caught.value.problems) == 3


def test_missing_params_error_lists_every_required_input() -> None:
    """MissingParamsError names each required input without a value, in declaration order."""
    with pytest.raises(MissingParamsError) as caught:
        spec.load(["../job.yaml"])
    assert caught.value.names == ("data",)
    assert str(caught.value) == (
        "../job.yaml:15 inputs: no value for the required input data (s3): "
        "pass it with -P NAME=VALUE or under params"
    )


def test_cycle_error_names_the_cycle() -> None:
    """DagCycleError.cycle lists the operations of the cycle, the first one repeated last."""
    with pytest.raises(DagCycleError) as caught:
        spec.load(["dag-cycle.yaml"])
    assert caught.value.cycle == ("fetch", "publish", "train", "fetch")


def test_command_line_param_that_does_not_convert_names_its_input() -> None:
    """A -P value of the wrong type says what it should be and where the input is declared."""
    with pytest.raises(InvalidParamError) as caught:
        spec.load(["../job.yaml"], {"data": "s3://x/y", "epochs": "many"})
    assert caught.value.name == "epochs"
    assert str(caught.value) == (
        '-P epochs=many: cannot convert "many" to int; input "epochs" is declared at ../job.yaml:17'
    )


def test_command_line_param_without_input_is_unexpected() -> None:
    """A -P for no declared input is an error that lists the inputs there are."""
    with pytest.raises(SpecError) as caught:
        spec.load(["../service.yaml"], {"img": "x"})
    assert str(caught.value) == (
        '-P img=x: unexpected param: the component has no input or output "img" (it has '
        "image); mark it contextOnly to pass it to templates only"
    )
