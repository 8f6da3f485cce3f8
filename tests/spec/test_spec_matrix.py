"""Matrices: grid, random and mapping expand into param dicts; tuner kinds are checked only."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from polytrack import spec
from polytrack._convert import spec_converter, structure_errors
from polytrack.errors import SpecError, UnsupportedMatrixError
from polytrack.spec import GridSearch, Matrix, RandomSearch

FIXTURES = Path(__file__).parents[1] / "fixtures" / "polyaxonfiles"


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def matrix_of(*paths: str) -> Matrix:
    matrix = spec.load(list(paths)).matrix
    assert matrix is not None
    return matrix


def structure(data: dict[str, Any]) -> Matrix:
    """A matrix section as written in YAML, structured alone."""
    matrix: Matrix = spec_converter.structure(data, Matrix)  # type: ignore[arg-type]
    return matrix


def test_grid_spaces_give_their_values() -> None:
    """choice, logspace, range, linspace and geomspace give the values numpy would."""
    matrix = matrix_of("matrix-grid.yaml")
    assert isinstance(matrix, GridSearch)
    values = {name: param.values() for name, param in matrix.params.items()}  # type: ignore[union-attr]
    assert values == {
        "optimizer": ["adam", "sgd"],
        "lr": [0.001, 0.01, 0.1],
        "layers": [1, 3],
        "dropout": [0.1, 0.3],
        "width": [16.0, 32.0, 64.0],
    }


def test_grid_expands_to_the_cartesian_product_in_order() -> None:
    """A grid runs every combination, the last param varying fastest."""
    runs = spec.expand_matrix(matrix_of("matrix-grid.yaml"))
    assert len(runs) == 2 * 3 * 2 * 2 * 3
    assert runs[0] == {"optimizer": "adam", "lr": 0.001, "layers": 1, "dropout": 0.1, "width": 16.0}
    assert runs[1]["width"] == 32.0
    assert runs[-1] == {"optimizer": "sgd", "lr": 0.1, "layers": 3, "dropout": 0.3, "width": 64.0}
    assert len({tuple(run.values()) for run in runs}) == len(runs)


def test_grid_num_runs_keeps_the_first_runs() -> None:
    """`numRuns` on a grid cuts the product to its first runs."""
    matrix = structure(
        {"kind": "grid", "numRuns": 3, "params": {"a": {"kind": "range", "value": [0, 10, 1]}}}
    )
    assert spec.expand_matrix(matrix) == [{"a": 0}, {"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    "value", [[0.01, 0.1, 5], {"start": 0.01, "stop": 0.1, "num": 5}, "0.01:0.1:5"]
)
def test_space_values_are_lists_mappings_or_strings(value: Any) -> None:
    """A linspace written as a list, a mapping or "a:b:c" is the same space."""
    matrix = structure({"kind": "grid", "params": {"lr": {"kind": "linspace", "value": value}}})
    assert spec.expand_matrix(matrix) == [
        {"lr": 0.01},
        {"lr": 0.0325},
        {"lr": 0.055},
        {"lr": 0.0775},
        {"lr": 0.1},
    ]


def test_random_search_is_reproducible_with_a_seed() -> None:
    """The same seed gives the same runs; another seed other runs."""
    matrix = matrix_of("matrix-random.yaml")
    assert isinstance(matrix, RandomSearch) and matrix.seed == 42
    first, again = spec.expand_matrix(matrix), spec.expand_matrix(matrix)
    assert first == again
    assert len(first) == 5
    assert spec.expand_matrix(matrix, seed=7) != first
    assert spec.expand_matrix(matrix, seed=7) == spec.expand_matrix(matrix, seed=7)


def test_random_draws_respect_each_distribution() -> None:
    """Every draw lies in its distribution's support and quantized ones sit on the grid."""
    matrix = matrix_of("matrix-random.yaml")
    for run in spec.expand_matrix(matrix, seed=1) + spec.expand_matrix(matrix, seed=2):
        assert 0 <= run["a"] < 1
        assert run["b"] in range(0, 101, 10) and isinstance(run["b"], int)
        assert math.exp(-3) <= run["c"] <= 1
        assert isinstance(run["d"], int) and 1 <= run["d"] <= 20
        assert isinstance(run["e"], float)
        assert isinstance(run["f"], int)
        assert run["g"] > 0
        assert run["h"] % 0.5 == 0
        assert run["i"] in ("x", "y")
        assert run["j"] in ("relu", "tanh")
        assert run["k"] in (0, 5)
        assert run["l"] in (0.0, 0.5, 1.0)
        assert run["m"] in (1.0, 2.0, 4.0)
        assert run["n"] in (1.0, 2.0, 4.0, 8.0)


def test_random_search_over_a_small_discrete_space_stops_at_its_size() -> None:
    """numRuns larger than a discrete space gives each combination once."""
    matrix = structure(
        {
            "kind": "random",
            "numRuns": 10,
            "seed": 0,
            "params": {
                "a": {"kind": "choice", "value": [1, 2]},
                "b": {"kind": "range", "value": "0:3:1"},
            },
        }
    )
    runs = spec.expand_matrix(matrix)
    assert len(runs) == 6
    assert sorted((run["a"], run["b"]) for run in runs) == [
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
        (2, 1),
        (2, 2),
    ]


def test_pchoice_follows_its_probabilities() -> None:
    """pchoice draws each option about as often as its probability says."""
    matrix = structure(
        {
            "kind": "random",
            "numRuns": 1,
            "params": {"act": {"kind": "pchoice", "value": [["relu", 0.9], ["tanh", 0.1]]}},
        }
    )
    draws = [spec.expand_matrix(matrix, seed=seed)[0]["act"] for seed in range(300)]
    assert 230 < draws.count("relu") < 290


def test_mapping_expands_to_its_values() -> None:
    """A mapping matrix runs once per listed dict."""
    assert spec.expand_matrix(matrix_of("matrix-mapping.yaml")) == [
        {"lr": 0.1, "optimizer": "sgd"},
        {"lr": 0.001, "optimizer": "adam"},
    ]


def test_each_matrix_run_loads_as_its_own_operation() -> None:
    """`load(..., matrix_run=run)` applies one run's params and renders its templates."""
    matrix = matrix_of("matrix-mapping.yaml")
    runs = [
        spec.load(["matrix-mapping.yaml"], matrix_run=run) for run in spec.expand_matrix(matrix)
    ]
    args = [run.component.run.container.args for run in runs]  # type: ignore[union-attr]
    assert args == [("--lr=0.1", "--opt=sgd"), ("--lr=0.001", "--opt=adam")]
    assert all(run.matrix is None for run in runs)


@pytest.mark.parametrize(
    ("preset", "kind"),
    [
        (None, "bayes"),
        ("preset-hyperopt.yaml", "hyperopt"),
        ("preset-iterative.yaml", "iterative"),
        ("preset-hyperband.yaml", "hyperband"),
    ],
)
def test_tuner_kinds_are_checked_but_not_expanded(preset: str | None, kind: str) -> None:
    """bayes, hyperopt, iterative and hyperband load; expanding them asks for a tuner."""
    matrix = matrix_of("matrix-tuners.yaml", *([preset] if preset else []))
    assert matrix.kind == kind
    with pytest.raises(UnsupportedMatrixError, match=f"a {kind} matrix chooses each run"):
        spec.expand_matrix(matrix)


def test_tuner_kinds_keep_their_settings() -> None:
    """The settings of a bayes and a hyperband search are typed."""
    bayes = matrix_of("matrix-tuners.yaml")
    assert bayes.kind == "bayes"
    assert (bayes.num_initial_runs, bayes.max_iterations) == (5, 10)  # type: ignore[union-attr]
    assert bayes.utility_function.gaussian_process.kernel == "matern"  # type: ignore[union-attr]
    hyperband = matrix_of("matrix-tuners.yaml", "preset-hyperband.yaml")
    assert hyperband.resource.name == "epochs"  # type: ignore[union-attr]
    assert (hyperband.max_iterations, hyperband.eta) == (81, 3.0)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([0.1, 0.4, 0.1], [0.1, 0.2, 0.3]),
        ([1, 1.3, 0.1], [1.0, 1.1, 1.2]),
        ("0:1:0.25", [0, 0.25, 0.5, 0.75]),
    ],
)
def test_range_stops_below_stop_despite_float_rounding(value: Any, expected: list[float]) -> None:
    """A float range never ends on its stop, even when the step count rounds up."""
    matrix = structure({"kind": "grid", "params": {"p": {"kind": "range", "value": value}}})
    assert [run["p"] for run in spec.expand_matrix(matrix)] == expected


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"kind": "linspace", "value": [1, 0, 3]}, "stop must be greater than start, got 1:0"),
        ({"kind": "range", "value": [0, 1, 0]}, "step must be positive, got 0"),
        ({"kind": "quniform", "value": [0, 1, -1]}, "q must be positive, got -1"),
        ({"kind": "normal", "value": [0, -1]}, "scale must not be negative, got -1"),
        ({"kind": "geomspace", "value": [0, 8, 4]}, "geomspace needs a positive start, got 0"),
        ({"kind": "choice", "value": []}, "expected a non-empty list of values, got a list"),
        ({"kind": "uniform", "value": "a:b"}, 'expected a number, got "a"'),
        ({"kind": "range", "value": [0, math.inf, 1]}, "expected a finite number, got inf"),
        ({"kind": "linspace", "value": "nan:1:3"}, "expected a finite number, got nan"),
        (
            {"kind": "uniform", "value": 3},
            'expected a list [low, high], a mapping or "a:b:c", got 3',
        ),
    ],
)
def test_invalid_spaces_say_what_is_wrong(param: dict[str, Any], message: str) -> None:
    """A malformed space or distribution is reported with its bounds."""
    with pytest.raises(Exception) as caught:
        structure({"kind": "random", "numRuns": 1, "params": {"p": param}})
    assert [reason for _, reason in structure_errors(caught.value)] == [message]


def test_matrix_param_of_wrong_kind_for_its_input(tmp_path: Path) -> None:
    """A distribution of numbers for a str input is an error at the matrix param."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1.1\nkind: operation\n"
        "matrix: {kind: random, numRuns: 2, params: {opt: {kind: uniform, value: [0, 1]}}}\n"
        "component:\n  inputs: [{name: opt, type: str}]\n"
        "  run: {kind: job, container: {image: x}}\n"
    )
    with pytest.raises(SpecError) as caught:
        spec.load([path])
    assert str(caught.value) == (
        f'{path}:3 matrix.params.opt.kind: uniform gives numbers, but input "opt" has type str'
    )
