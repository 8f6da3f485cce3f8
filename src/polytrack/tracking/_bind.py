"""One implementation, two faces with Polyaxon's signature: the module function, which
acts on the current run (`tracking.log_metrics`), and the `Run` method, which acts on its
own (`Run(...).log_metrics`). Polyaxon writes each twice; here an implementation takes
the polytrack run first and these make both faces of it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from polytrack import _state
from polytrack.errors import RunStateError
from polytrack.run import DisabledRun, Run
from polytrack.tracking._common import no_run

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W", bound=Callable[..., Any])


class HasRun(Protocol):
    """What a `Run` method needs of its `Run`: the polytrack run it records into."""

    @property
    def polytrack_run(self) -> Run | DisabledRun: ...


def on_current(impl: Callable[Concatenate[Run | DisabledRun, P], R]) -> Callable[P, R | None]:
    """`impl` on the current run; before `init()` a warning (once) and None."""

    def function(*args: P.args, **kwargs: P.kwargs) -> R | None:
        run = _state.current
        if run is None:
            no_run(impl.__name__)
            return None
        return impl(run, *args, **kwargs)

    return _dressed(function, impl, first="")


def on_current_recording(impl: Callable[Concatenate[Run, P], R]) -> Callable[P, R | None]:
    """`impl` (media: it needs a recording run) on the current run; None for a disabled
    run, which would drop the value anyway, and before `init()` (with a warning)."""

    def function(*args: P.args, **kwargs: P.kwargs) -> R | None:
        run = _state.current
        if run is None:
            no_run(impl.__name__)
            return None
        if isinstance(run, DisabledRun):
            return None
        return impl(run, *args, **kwargs)

    return _dressed(function, impl, first="")


def on_current_required(impl: Callable[Concatenate[Run | DisabledRun, P], R]) -> Callable[P, R]:
    """`impl` on the current run; before `init()` `RunStateError`: a path asked for
    before there is a run has no answer that a script could go on with."""

    def function(*args: P.args, **kwargs: P.kwargs) -> R:
        run = _state.current
        if run is None:
            raise RunStateError(
                f"tracking.{impl.__name__}() needs a run: call tracking.init() first"
            )
        return impl(run, *args, **kwargs)

    return _dressed(function, impl, first="")


def as_method(impl: Callable[Concatenate[Run | DisabledRun, P], R]) -> Callable[..., R]:
    """`impl` as a method of a `Run` facade, on that facade's polytrack run."""

    def method(self: HasRun, *args: Any, **kwargs: Any) -> R:
        return impl(self.polytrack_run, *args, **kwargs)

    return _dressed(method, impl, first="self")


def as_recording_method(impl: Callable[Concatenate[Run, P], R]) -> Callable[..., R | None]:
    """`impl` (media) as a method of a `Run` facade; None for a disabled run."""

    def method(self: HasRun, *args: Any, **kwargs: Any) -> R | None:
        run = self.polytrack_run
        if isinstance(run, DisabledRun):
            return None
        return impl(run, *args, **kwargs)

    return _dressed(method, impl, first="self")


def _dressed(wrapper: W, impl: Callable[..., Any], *, first: str) -> W:
    """`wrapper` with `impl`'s name, docstring and signature, less its `run` parameter
    (and with `self` instead for a method): `inspect.signature` shows Polyaxon's."""
    signature = inspect.signature(impl)
    parameters = list(signature.parameters.values())[1:]
    if first:
        parameters.insert(0, inspect.Parameter(first, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    wrapper.__name__ = wrapper.__qualname__ = impl.__name__
    wrapper.__doc__ = impl.__doc__
    wrapper.__module__ = "polytrack.tracking"
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__wrapped_impl__ = impl  # type: ignore[attr-defined]
    return wrapper
