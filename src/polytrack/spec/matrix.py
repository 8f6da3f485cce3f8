"""The `matrix` section: many runs of one component over a space of params.

`grid`, `random` and `mapping` expand here into the list of param dicts to run
(`expand_matrix`); `hyperband`, `bayes`, `hyperopt` and `iterative` choose each new run
from the results of earlier ones, so they are parsed and checked but need a tuner.

Each param is a discrete space (`choice`, `pchoice`, `range`, `linspace`, `logspace`,
`geomspace`) or a distribution (`uniform`, `quniform`, `loguniform`, `qloguniform`,
`normal`, `qnormal`, `lognormal`, `qlognormal`) with hyperopt's meaning: `loguniform`
is `exp(uniform(low, high))`, `qX` is `round(X / q) * q` (an int when `q` is an int).
Spaces give floats (ints for a `range` of ints), rounded to 15 significant digits so that
`geomspace: [1, 8, 4]` is `[1.0, 2.0, 4.0, 8.0]`. Random draws use Python's `random`
seeded with `seed`: the same seed gives the same runs.
A space's value is a list (`[0.01, 0.1, 5]`), a mapping (`{start: 0.01, stop: 0.1,
num: 5}`) or a string (`"0.01:0.1:5"`).

A matrix that loads can be expanded: a space gives at most `MAX_VALUES` values, a grid or
a random search at most `MAX_RUNS` runs (a list of dicts in memory, and as many runs to
launch), and no draw or grid point overflows a float. `range: 0:1e12:1` or a lognormal
of mean 1e30 is refused when the Polyaxonfile is read, not when a launch runs out of
memory or raises `OverflowError`.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, TypeAlias

from attrs import frozen

from polytrack._convert import FieldError, Parse, describe, spec_converter, structure_errors
from polytrack.errors import UnsupportedMatrixError
from polytrack.spec._fields import Number, PositiveInt
from polytrack.spec.io import Param
from polytrack.spec.policies import EarlyStopping, Optimization

__all__ = [
    "Bayes",
    "GridSearch",
    "HpParam",
    "Hyperband",
    "Hyperopt",
    "MAX_RUNS",
    "MAX_VALUES",
    "Iterative",
    "MappingMatrix",
    "Matrix",
    "RandomSearch",
    "expand_matrix",
]

MAX_VALUES: Final = 100_000
"""The most values a `range`, `linspace`, `logspace` or `geomspace` may give."""
MAX_RUNS: Final = 100_000
"""The most runs a grid or a random search may expand to."""

# The largest x whose exp(x) is a float.
_MAX_EXP: Final = math.log(sys.float_info.max)
# Python's gauss() and normalvariate() turn a uniform draw of at least 2**-53 into a
# deviation, so no draw lies 13 standard deviations or more from the mean.
_DEVIATIONS: Final = 13


def _exp(x: float) -> float:
    return math.exp(x) if x <= _MAX_EXP else math.inf


def _within_floats(largest: float, what: str, subpath: tuple[str | int, ...]) -> None:
    """Refuse a space or distribution whose values can reach `largest`, if that is no float."""
    if not math.isfinite(largest):
        raise FieldError(f"{what} overflows a float", subpath=subpath)


def _at_most_values(count: float, what: str, subpath: tuple[str | int, ...] = ()) -> None:
    if count > MAX_VALUES:
        shown = f"{count:,.0f}" if math.isfinite(count) else "endlessly many"
        raise FieldError(
            f"{what} gives {shown} values; a space gives at most {MAX_VALUES:,}", subpath=subpath
        )


# -- values of the spaces and distributions --------------------------------------------


@frozen
class RangeValue:
    """`range`: start, start + step, ... below stop (as Python's `range`, floats allowed)."""

    start: Number
    stop: Number
    step: Number

    def __attrs_post_init__(self) -> None:
        if self.start >= self.stop:
            raise FieldError(f"stop must be greater than start, got {self.start}:{self.stop}")
        if self.step <= 0:
            raise FieldError(f"step must be positive, got {self.step}", subpath=("step",))
        _at_most_values((float(self.stop) - float(self.start)) / float(self.step), "the range")

    def values(self) -> list[int | float]:
        count = math.ceil((self.stop - self.start) / self.step)
        points = [_tidy(self.start + index * self.step) for index in range(count)]
        # Float division can count one step too many: 0.1:0.4:0.1 would end on 0.4.
        return [point for point in points if point < self.stop]


@frozen
class SpaceValue:
    """`linspace` and `geomspace`: `num` values from start to stop, both included."""

    start: Number
    stop: Number
    num: PositiveInt

    def __attrs_post_init__(self) -> None:
        if self.start >= self.stop:
            raise FieldError(f"stop must be greater than start, got {self.start}:{self.stop}")
        _at_most_values(self.num, "the space", ("num",))
        _within_floats(float(self.stop) - float(self.start), "stop - start", ())

    def fractions(self) -> list[float]:
        if self.num == 1:
            return [0.0]
        return [index / (self.num - 1) for index in range(self.num)]


@frozen
class LogSpaceValue:
    """`logspace`: `base ** x` for `num` values of x from start to stop."""

    start: Number
    stop: Number
    num: PositiveInt
    base: Number = 10

    def __attrs_post_init__(self) -> None:
        if self.start >= self.stop:
            raise FieldError(f"stop must be greater than start, got {self.start}:{self.stop}")
        _at_most_values(self.num, "the space", ("num",))
        if self.base <= 0:
            # A negative base to a fractional power is a complex number.
            raise FieldError(f"base must be positive, got {self.base}", subpath=("base",))
        for end in ("start", "stop"):
            try:
                float(self.base) ** float(getattr(self, end))
            except OverflowError:
                raise FieldError(f"base ** {end} overflows a float", subpath=(end,)) from None


@frozen
class DistValue:
    """`uniform` and `loguniform` bounds."""

    low: Number
    high: Number


@frozen
class QDistValue:
    """`quniform` and `qloguniform` bounds and quantum."""

    low: Number
    high: Number
    q: Number

    def __attrs_post_init__(self) -> None:
        if self.q <= 0:
            raise FieldError(f"q must be positive, got {self.q}", subpath=("q",))


@frozen
class NormalValue:
    """`normal` and `lognormal` mean (`loc`) and standard deviation (`scale`)."""

    loc: Number
    scale: Number

    def __attrs_post_init__(self) -> None:
        if self.scale < 0:
            raise FieldError(f"scale must not be negative, got {self.scale}", subpath=("scale",))


@frozen
class QNormalValue:
    """`qnormal` and `qlognormal` mean, standard deviation and quantum."""

    loc: Number
    scale: Number
    q: Number

    def __attrs_post_init__(self) -> None:
        if self.scale < 0:
            raise FieldError(f"scale must not be negative, got {self.scale}", subpath=("scale",))
        if self.q <= 0:
            raise FieldError(f"q must be positive, got {self.q}", subpath=("q",))


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise FieldError(f"expected a number, got {describe(text)}") from None


def _value(model: type[Any], keys: tuple[str, ...], required: int) -> Callable[[Any], Any]:
    """Parse a space or distribution from a list, a mapping or a `"a:b:c"` string."""
    shape = "[" + ", ".join(keys[:required]) + "]"

    def parse(value: Any) -> Any:
        positional = True
        if isinstance(value, str) and ":" in value:
            items: Any = [_number(part.strip()) for part in value.split(":")]
        elif isinstance(value, list | tuple):
            items = value
        elif isinstance(value, Mapping):
            items, positional = value, False
        else:
            raise FieldError(
                f'expected a list {shape}, a mapping or "a:b:c", got {describe(value)}'
            )
        if positional:
            if not required <= len(items) <= len(keys):
                count = f"{required}" if required == len(keys) else f"{required} or {len(keys)}"
                raise FieldError(f"expected {count} values {shape}, got {len(items)}")
            items = dict(zip(keys, items, strict=False))
        try:
            return spec_converter.structure(items, model)
        except Exception as exc:
            path, reason = structure_errors(exc)[0]
            if positional and path and path[0] in keys:
                path = (keys.index(str(path[0])), *path[1:])
            raise FieldError(reason, subpath=path) from None

    return parse


def _pchoice(value: Any) -> tuple[tuple[Any, float], ...]:
    if not isinstance(value, list | tuple) or not value:
        raise FieldError(f"expected a list of [value, probability] pairs, got {describe(value)}")
    pairs = []
    for index, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise FieldError(
                f"expected a [value, probability] pair, got {describe(pair)}", subpath=(index,)
            )
        option, probability = pair
        if (
            not isinstance(probability, int | float)
            or isinstance(probability, bool)
            or not 0 <= probability <= 1
        ):
            raise FieldError(
                f"expected a probability between 0 and 1, got {describe(probability)}",
                subpath=(index, 1),
            )
        pairs.append((option, float(probability)))
    total = sum(probability for _, probability in pairs)
    if total > 1 + 1e-9:
        raise FieldError(f"the probabilities add up to {total:g}, more than 1")
    return tuple(pairs)


def _choices(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise FieldError(f"expected a non-empty list of values, got {describe(value)}")
    return tuple(spec_converter.structure(value, tuple[Any, ...]))


Range = Annotated[RangeValue, Parse(_value(RangeValue, ("start", "stop", "step"), 3))]
Space = Annotated[SpaceValue, Parse(_value(SpaceValue, ("start", "stop", "num"), 3))]
LogSpace = Annotated[
    LogSpaceValue, Parse(_value(LogSpaceValue, ("start", "stop", "num", "base"), 3))
]
Dist = Annotated[DistValue, Parse(_value(DistValue, ("low", "high"), 2))]
QDist = Annotated[QDistValue, Parse(_value(QDistValue, ("low", "high", "q"), 3))]
Normal = Annotated[NormalValue, Parse(_value(NormalValue, ("loc", "scale"), 2))]
QNormal = Annotated[QNormalValue, Parse(_value(QNormalValue, ("loc", "scale", "q"), 3))]

# -- the params ------------------------------------------------------------------------


def _tidy(value: int | float) -> int | float:
    """A computed grid point without float noise: 4.0, not 3.9999999999999996."""
    return float(f"{value:.15g}") if isinstance(value, float) else value


def _quantize(value: float, q: int | float) -> int | float:
    steps = round(value / q)
    return int(steps * q) if isinstance(q, int) else _tidy(steps * q)


@frozen
class HpChoice:
    """One of the listed values."""

    value: Annotated[tuple[Any, ...], Parse(_choices)]
    kind: Literal["choice"] = "choice"

    def values(self) -> list[Any]:
        return list(self.value)


@frozen
class HpPChoice:
    """One of the listed values, each with its probability: `[[relu, 0.3], [tanh, 0.7]]`."""

    value: Annotated[tuple[tuple[Any, float], ...], Parse(_pchoice)]
    kind: Literal["pchoice"] = "pchoice"

    def sample(self, rng: random.Random) -> Any:
        options = [option for option, _ in self.value]
        return rng.choices(options, weights=[weight for _, weight in self.value])[0]


@frozen
class HpRange:
    """Values from start, by step, below stop."""

    value: Range
    kind: Literal["range"] = "range"

    def values(self) -> list[Any]:
        return self.value.values()


@frozen
class HpLinSpace:
    """`num` evenly spaced values from start to stop."""

    value: Space
    kind: Literal["linspace"] = "linspace"

    def values(self) -> list[Any]:
        start, stop = self.value.start, self.value.stop
        return [_tidy(float(start + (stop - start) * f)) for f in self.value.fractions()]


@frozen
class HpLogSpace:
    """`num` values evenly spaced on a log scale: `base ** x` for x from start to stop."""

    value: LogSpace
    kind: Literal["logspace"] = "logspace"

    def values(self) -> list[Any]:
        start, stop, num = self.value.start, self.value.stop, self.value.num
        steps = [index / (num - 1) for index in range(num)] if num > 1 else [0.0]
        return [_tidy(float(self.value.base ** (start + (stop - start) * s))) for s in steps]


@frozen
class HpGeomSpace:
    """`num` values from start to stop in a geometric progression."""

    value: Space
    kind: Literal["geomspace"] = "geomspace"

    def __attrs_post_init__(self) -> None:
        if self.value.start <= 0:
            raise FieldError(
                f"geomspace needs a positive start, got {self.value.start}", subpath=("value",)
            )
        ratio = float(self.value.stop) / float(self.value.start)
        _within_floats(ratio, "stop / start", ("value",))

    def values(self) -> list[Any]:
        start, stop = self.value.start, self.value.stop
        return [_tidy(float(start * (stop / start) ** f)) for f in self.value.fractions()]


@frozen
class HpUniform:
    """A float drawn uniformly from [low, high)."""

    value: Dist
    kind: Literal["uniform"] = "uniform"

    def __attrs_post_init__(self) -> None:
        low, high = float(self.value.low), float(self.value.high)
        _within_floats(high - low, "high - low", ("value",))

    def sample(self, rng: random.Random) -> Any:
        return rng.uniform(self.value.low, self.value.high)


@frozen
class HpQUniform:
    """`round(uniform(low, high) / q) * q`."""

    value: QDist
    kind: Literal["quniform"] = "quniform"

    def __attrs_post_init__(self) -> None:
        low, high = float(self.value.low), float(self.value.high)
        _within_floats(high - low, "high - low", ("value",))
        _within_floats(max(abs(low), abs(high)) / self.value.q, "a draw divided by q", ("value",))

    def sample(self, rng: random.Random) -> Any:
        return _quantize(rng.uniform(self.value.low, self.value.high), self.value.q)


@frozen
class HpLogUniform:
    """`exp(uniform(low, high))`: a value whose logarithm is uniform."""

    value: Dist
    kind: Literal["loguniform"] = "loguniform"

    def __attrs_post_init__(self) -> None:
        _within_floats(_exp(max(self.value.low, self.value.high)), "exp(high)", ("value",))

    def sample(self, rng: random.Random) -> Any:
        return math.exp(rng.uniform(self.value.low, self.value.high))


@frozen
class HpQLogUniform:
    """`round(exp(uniform(low, high)) / q) * q`."""

    value: QDist
    kind: Literal["qloguniform"] = "qloguniform"

    def __attrs_post_init__(self) -> None:
        largest = _exp(max(self.value.low, self.value.high))
        _within_floats(largest, "exp(high)", ("value",))
        _within_floats(largest / self.value.q, "a draw divided by q", ("value",))

    def sample(self, rng: random.Random) -> Any:
        drawn = math.exp(rng.uniform(self.value.low, self.value.high))
        return _quantize(drawn, self.value.q)


@frozen
class HpNormal:
    """A float drawn from the normal distribution of mean `loc` and deviation `scale`."""

    value: Normal
    kind: Literal["normal"] = "normal"

    def __attrs_post_init__(self) -> None:
        _within_floats(_farthest(self.value), "a draw", ("value",))

    def sample(self, rng: random.Random) -> Any:
        return rng.gauss(self.value.loc, self.value.scale)


@frozen
class HpQNormal:
    """`round(normal(loc, scale) / q) * q`."""

    value: QNormal
    kind: Literal["qnormal"] = "qnormal"

    def __attrs_post_init__(self) -> None:
        largest = _farthest(self.value)
        _within_floats(largest, "a draw", ("value",))
        _within_floats(largest / self.value.q, "a draw divided by q", ("value",))

    def sample(self, rng: random.Random) -> Any:
        return _quantize(rng.gauss(self.value.loc, self.value.scale), self.value.q)


@frozen
class HpLogNormal:
    """`exp(normal(loc, scale))`."""

    value: Normal
    kind: Literal["lognormal"] = "lognormal"

    def __attrs_post_init__(self) -> None:
        _within_floats(_exp(_highest(self.value)), "exp of a draw", ("value",))

    def sample(self, rng: random.Random) -> Any:
        return rng.lognormvariate(self.value.loc, self.value.scale)


@frozen
class HpQLogNormal:
    """`round(exp(normal(loc, scale)) / q) * q`."""

    value: QNormal
    kind: Literal["qlognormal"] = "qlognormal"

    def __attrs_post_init__(self) -> None:
        largest = _exp(_highest(self.value))
        _within_floats(largest, "exp of a draw", ("value",))
        _within_floats(largest / self.value.q, "a draw divided by q", ("value",))

    def sample(self, rng: random.Random) -> Any:
        drawn = rng.lognormvariate(self.value.loc, self.value.scale)
        return _quantize(drawn, self.value.q)


def _farthest(value: NormalValue | QNormalValue) -> float:
    """The largest magnitude a normal draw can have."""
    return abs(float(value.loc)) + _DEVIATIONS * float(value.scale)


def _highest(value: NormalValue | QNormalValue) -> float:
    """The largest normal draw, the exponent of the largest lognormal one."""
    return float(value.loc) + _DEVIATIONS * float(value.scale)


HpParam: TypeAlias = (
    HpChoice
    | HpPChoice
    | HpRange
    | HpLinSpace
    | HpLogSpace
    | HpGeomSpace
    | HpUniform
    | HpQUniform
    | HpLogUniform
    | HpQLogUniform
    | HpNormal
    | HpQNormal
    | HpLogNormal
    | HpQLogNormal
)
_Discrete = HpChoice | HpRange | HpLinSpace | HpLogSpace | HpGeomSpace
DISCRETE_KINDS = ("choice", "range", "linspace", "logspace", "geomspace")

# -- the matrix kinds ------------------------------------------------------------------


@frozen
class OptimizationMetric:
    """The metric a search optimizes."""

    name: str
    optimization: Optimization = "maximize"


@frozen
class OptimizationResource:
    """The budget hyperband gives each run (epochs, steps), passed as param `name`."""

    name: str
    type: Literal["int", "float"] = "int"


@frozen
class Tuner:
    """The component that suggests runs for a search (`hubRef`), if not the default one."""

    hub_ref: str
    queue: str | None = None
    presets: tuple[str, ...] | None = None
    params: Mapping[str, Param] | None = None


@frozen
class GaussianProcess:
    """The surrogate model of a bayesian search."""

    kernel: Literal["rbf", "matern"] | None = None
    length_scale: float | None = None
    nu: float | None = None
    num_restarts_optimizer: int | None = None


@frozen
class UtilityFunction:
    """The acquisition function of a bayesian search."""

    acquisition_function: Literal["ucb", "ei", "poi"] | None = None
    gaussian_process: GaussianProcess | None = None
    kappa: float | None = None
    eps: float | None = None
    num_warmup: int | None = None
    num_iterations: int | None = None


@frozen
class MappingMatrix:
    """One run per listed dict of params."""

    values: tuple[Mapping[str, Any], ...]
    kind: Literal["mapping"] = "mapping"
    concurrency: PositiveInt | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None


@frozen
class GridSearch:
    """Every combination of the params' values (the first `numRuns` if set)."""

    params: Mapping[str, HpParam]
    kind: Literal["grid"] = "grid"
    num_runs: PositiveInt | None = None
    concurrency: PositiveInt | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None

    def __attrs_post_init__(self) -> None:
        for name, param in self.params.items():
            if not isinstance(param, _Discrete):
                raise FieldError(
                    f"a grid search takes discrete values ({', '.join(DISCRETE_KINDS)}), "
                    f"got {param.kind}; use kind: random for distributions",
                    subpath=("params", name, "kind"),
                )
        runs = math.prod(len(_discrete(param).values()) for param in self.params.values())
        if min(runs, self.num_runs or runs) > MAX_RUNS:
            raise FieldError(
                f"the grid has {runs:,} runs; a matrix expands to at most {MAX_RUNS:,} "
                f"(set numRuns to run the first ones)",
                subpath=("params",),
            )


@frozen
class RandomSearch:
    """`numRuns` distinct draws from the params; `seed` makes them reproducible."""

    params: Mapping[str, HpParam]
    num_runs: PositiveInt
    kind: Literal["random"] = "random"
    seed: int | None = None
    concurrency: PositiveInt | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if self.num_runs > MAX_RUNS:
            raise FieldError(
                f"numRuns is {self.num_runs:,}; a matrix expands to at most {MAX_RUNS:,} runs",
                subpath=("numRuns",),
            )


@frozen
class Hyperband:
    """Successive halving over `maxIterations` of `resource`, keeping 1/`eta` per round."""

    params: Mapping[str, HpParam]
    max_iterations: PositiveInt
    kind: Literal["hyperband"] = "hyperband"
    eta: float = 3
    resource: OptimizationResource | None = None
    metric: OptimizationMetric | None = None
    resume: bool | None = None
    seed: int | None = None
    concurrency: PositiveInt | None = None
    tuner: Tuner | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if self.eta <= 1:
            raise FieldError(f"eta must be greater than 1, got {self.eta:g}", subpath=("eta",))


@frozen
class Bayes:
    """Bayesian optimization: `numInitialRuns` random runs, then `maxIterations` rounds."""

    params: Mapping[str, HpParam]
    num_initial_runs: PositiveInt
    max_iterations: PositiveInt
    metric: OptimizationMetric
    kind: Literal["bayes"] = "bayes"
    utility_function: UtilityFunction | None = None
    seed: int | None = None
    concurrency: PositiveInt | None = None
    tuner: Tuner | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None


@frozen
class Hyperopt:
    """A search driven by the hyperopt library (`tpe`, `rand` or `anneal`)."""

    params: Mapping[str, HpParam]
    num_runs: PositiveInt
    kind: Literal["hyperopt"] = "hyperopt"
    algorithm: Literal["tpe", "rand", "anneal"] = "tpe"
    max_iterations: PositiveInt | None = None
    metric: OptimizationMetric | None = None
    seed: int | None = None
    concurrency: PositiveInt | None = None
    tuner: Tuner | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None


@frozen
class Iterative:
    """A custom `tuner` suggests runs, round after round, `maxIterations` times."""

    max_iterations: PositiveInt
    kind: Literal["iterative"] = "iterative"
    params: Mapping[str, HpParam] | None = None
    seed: int | None = None
    concurrency: PositiveInt | None = None
    tuner: Tuner | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None


Matrix: TypeAlias = (
    MappingMatrix | GridSearch | RandomSearch | Hyperband | Bayes | Hyperopt | Iterative
)


def matrix_param_names(matrix: Matrix) -> set[str]:
    """The params a matrix sets for each run."""
    if isinstance(matrix, MappingMatrix):
        return {name for values in matrix.values for name in values}
    names = set(matrix.params or {})
    if isinstance(matrix, Hyperband) and matrix.resource is not None:
        names.add(matrix.resource.name)
    return names


def expand_matrix(matrix: Matrix, *, seed: int | None = None) -> list[dict[str, Any]]:
    """The params of each run of a `grid`, `random` or `mapping` matrix, in order.

    Args:
        matrix: the operation's matrix.
        seed: seeds a random search, overriding its `seed`; without either, every call
            draws anew.

    Raises:
        UnsupportedMatrixError: for hyperband, bayes, hyperopt and iterative, which pick
            runs from the results of earlier ones.

    Example:
        >>> grid = GridSearch(params={"lr": HpChoice(value=(0.1, 0.01)), "bs": HpChoice((8,))})
        >>> expand_matrix(grid)
        [{'lr': 0.1, 'bs': 8}, {'lr': 0.01, 'bs': 8}]
    """
    if isinstance(matrix, MappingMatrix):
        return [dict(values) for values in matrix.values]
    if isinstance(matrix, GridSearch):
        names = list(matrix.params)
        spaces = [_discrete(param).values() for param in matrix.params.values()]
        combos = itertools.islice(itertools.product(*spaces), matrix.num_runs)
        return [dict(zip(names, combo, strict=True)) for combo in combos]
    if isinstance(matrix, RandomSearch):
        return _random_runs(matrix, seed if seed is not None else matrix.seed)
    raise UnsupportedMatrixError(
        f"a {matrix.kind} matrix chooses each run from the results of earlier ones; "
        f"it needs a tuner, it cannot be expanded ahead of time"
    )


def _discrete(param: HpParam) -> _Discrete:
    assert isinstance(param, _Discrete), param  # GridSearch checked this
    return param


def _random_runs(matrix: RandomSearch, seed: int | None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    wanted = matrix.num_runs
    if all(isinstance(param, _Discrete) for param in matrix.params.values()):
        space = math.prod(len(_discrete(param).values()) for param in matrix.params.values())
        wanted = min(wanted, space)
    samplers = {name: _sampler(param) for name, param in matrix.params.items()}
    runs: list[dict[str, Any]] = []
    seen: set[Any] = set()  # `run not in runs` would take time quadratic in numRuns
    attempts = 0
    while len(runs) < wanted and attempts < 100 * matrix.num_runs:
        attempts += 1
        run = {name: sample(rng) for name, sample in samplers.items()}
        key = _hashable(run)
        if key not in seen:
            seen.add(key)
            runs.append(run)
    return runs


def _hashable(value: Any) -> Any:
    """`value` as something hashable that is equal where `value` is (1 == 1.0 included)."""
    if isinstance(value, Mapping):
        return frozenset((key, _hashable(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return (type(value) is tuple, tuple(_hashable(item) for item in value))
    return value


def _sampler(param: HpParam) -> Callable[[random.Random], Any]:
    if isinstance(param, _Discrete):
        values = param.values()
        return lambda rng: rng.choice(values)
    return param.sample
