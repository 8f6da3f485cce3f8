"""Polyaxon's matrix params as Optuna distributions, and Optuna's values back as params.

Each param becomes one `Dimension`: the distribution Optuna samples and a `decode` that
turns the sampled value into the param's value. The mapping keeps each param's meaning
(`spec/matrix.py`), prior included, rather than approximating it:

- `choice`: a `CategoricalDistribution` of the indices, decoded as the value there;
- `range` of ints: `IntDistribution(start, last, step)`, the value itself;
- `range` of floats, `linspace`, `logspace`, `geomspace`: an `IntDistribution` of the
  indices (ordered: TPE learns that neighbours are alike), decoded as the value there;
- `uniform`: `FloatDistribution(low, high)`;
- `quniform`: an `IntDistribution` of the multiples `k` of `q` in [low, high], as `k * q`;
- `loguniform`: `FloatDistribution(exp(low), exp(high), log=True)`: the same law;
  `qloguniform` the same, rounded to a multiple of `q`;
- `normal`, `lognormal`, `qnormal`, `qlognormal` and `pchoice`: `FloatDistribution(0, 1)`,
  a quantile, decoded by the law's inverse CDF (for `pchoice`, the option whose
  cumulative probability holds it).

Optuna has no normal or weighted categorical distribution; drawing a uniform quantile and
applying the inverse CDF gives exactly the law a random search draws from, and a model
based sampler (TPE) still learns, since the map is monotone. Choices go by index so that
any YAML value (a list, a mapping, `1` beside `true`) can be a choice.

Optuna is imported by the functions that need it, never when this module is imported.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from attrs import frozen

from polytrack.errors import UnsupportedMatrixError
from polytrack.spec import matrix as m

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["Dimension", "dimensions"]

# The quantiles a normal law is drawn at stay this far from 0 and 1: its inverse CDF is
# infinite there. 1e-12 is 7 deviations out, well inside the loader's 13.
_EDGE: Final = 1e-12


@frozen
class Dimension:
    """One matrix param as Optuna samples it: `decode(sampled)` is the param's value."""

    name: str
    distribution: BaseDistribution
    decode: Callable[[Any], Any]


def dimensions(params: Mapping[str, m.HpParam]) -> list[Dimension]:
    """The Optuna dimensions of a matrix's `params`, in their order.

    Raises:
        UnsupportedMatrixError: a param gives no value at all (a `quniform` with no
            multiple of `q` in its bounds, `low` above `high`); names the param.
    """
    return [_dimension(name, param) for name, param in params.items()]


def _dimension(name: str, param: m.HpParam) -> Dimension:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    def indexed(values: Sequence[Any]) -> Dimension:
        if not values:
            raise UnsupportedMatrixError(f"matrix param {name!r} ({param.kind}) has no value")
        if isinstance(param, m.HpChoice):
            distribution: BaseDistribution = CategoricalDistribution(tuple(range(len(values))))
        else:
            distribution = IntDistribution(0, len(values) - 1)
        return Dimension(name, distribution, lambda index: values[int(index)])

    if isinstance(param, m.HpChoice | m.HpLinSpace | m.HpLogSpace | m.HpGeomSpace):
        return indexed(param.values())
    if isinstance(param, m.HpRange):
        values = param.values()
        if values and all(isinstance(v, int) for v in values) and isinstance(param.value.step, int):
            step = param.value.step
            return Dimension(name, IntDistribution(values[0], values[-1], step=step), int)
        return indexed(values)
    if isinstance(param, m.HpUniform | m.HpLogUniform | m.HpQLogUniform):
        low, high = float(param.value.low), float(param.value.high)
        if low > high:
            raise UnsupportedMatrixError(
                f"matrix param {name!r} ({param.kind}): low {low:g} is above high {high:g}"
            )
        if isinstance(param, m.HpUniform):
            return Dimension(name, FloatDistribution(low, high), float)
        low, high = math.exp(low), math.exp(high)
        if low <= 0:
            raise UnsupportedMatrixError(
                f"matrix param {name!r} ({param.kind}): exp(low) is 0 as a float"
            )
        log = FloatDistribution(low, high, log=True)
        if isinstance(param, m.HpLogUniform):
            return Dimension(name, log, float)
        q = param.value.q
        return Dimension(name, log, lambda value: _quantize(float(value), q))
    if isinstance(param, m.HpQUniform):
        q = param.value.q
        first = math.ceil(param.value.low / q)
        last = math.floor(param.value.high / q)
        if first > last:
            raise UnsupportedMatrixError(
                f"matrix param {name!r} (quniform): no multiple of q={q} lies in "
                f"[{param.value.low}, {param.value.high}]"
            )
        return Dimension(name, IntDistribution(first, last), lambda k: _times(int(k), q))
    if isinstance(param, m.HpPChoice):
        options = [option for option, _ in param.value]
        total = sum(p for _, p in param.value)
        if total <= 0:
            raise UnsupportedMatrixError(f"matrix param {name!r} (pchoice): every probability is 0")
        bounds = list(itertools.accumulate(p / total for _, p in param.value))

        def pick(quantile: Any) -> Any:
            return options[min(bisect.bisect_right(bounds, float(quantile)), len(options) - 1)]

        return Dimension(name, FloatDistribution(0.0, 1.0), pick)
    return Dimension(name, FloatDistribution(_EDGE, 1.0 - _EDGE), _normal_decoder(param))


def _normal_decoder(
    param: m.HpNormal | m.HpQNormal | m.HpLogNormal | m.HpQLogNormal,
) -> Callable[[Any], Any]:
    loc, scale = float(param.value.loc), float(param.value.scale)
    law = statistics.NormalDist(loc, scale) if scale > 0 else None
    log = isinstance(param, m.HpLogNormal | m.HpQLogNormal)
    q = param.value.q if isinstance(param, m.HpQNormal | m.HpQLogNormal) else None

    def decode(quantile: Any) -> Any:
        drawn = law.inv_cdf(float(quantile)) if law is not None else loc
        value = math.exp(drawn) if log else drawn
        return _quantize(value, q) if q is not None else value

    return decode


def _tidy(value: float) -> float:
    """A multiple of a float `q` without float noise: 0.3, not 0.30000000000000004."""
    return float(f"{value:.15g}")


def _times(k: int, q: int | float) -> int | float:
    return k * q if isinstance(q, int) else _tidy(k * q)


def _quantize(value: float, q: int | float) -> int | float:
    """`round(value / q) * q`, an int when `q` is one (as a random search gives it)."""
    return _times(round(value / q), q)
