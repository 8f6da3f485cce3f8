"""Loading Polyaxonfiles into a resolved `Operation`, with errors that name file and line.

The steps, in order, each on plain located data (see `_source`) until the last:

1. read each file; check `version: 1.1` and `kind`;
2. make the first file an operation (a component becomes `{component: ...}`) and patch it
   with each further file, a preset, by its `patchStrategy`;
3. find the component (`component`, `pathRef`, or in a DAG `dagRef`) and apply `runPatch`;
4. convert every param (`params:`, then `-P`, which wins) to its input's type, and fail
   listing every required input left without a value (matrix and join params count);
5. render `{{ }}` templates with the params (see `templates`);
6. structure the result into the models with the Polyaxonfile converter, merging the
   operation's shared sections over the component's;
7. for a DAG, resolve each operation the same way, then check names, dependencies and
   cycles.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from polytrack._convert import (
    FieldError,
    describe,
    spec_converter,
    structure_errors,
    templates_now,
    waits,
)
from polytrack.errors import DagCycleError, InvalidParamError, MissingParamsError, SpecError
from polytrack.spec._source import Key, Located, PatchStrategy
from polytrack.spec.io import IO, Join, Param
from polytrack.spec.iotypes import convert, display
from polytrack.spec.matrix import (
    HpChoice,
    HpPChoice,
    MappingMatrix,
    Matrix,
    matrix_param_names,
)
from polytrack.spec.operation import Component, Dag, Operation, find_cycle
from polytrack.spec.refs import joined_params, ops_namespace, read_ref
from polytrack.spec.templates import Context, Namespace, ParamView, render

__all__ = ["SPEC_VERSION", "load"]

SPEC_VERSION = 1.1
"""The Polyaxonfile specification version polytrack reads (Polyaxon 2.16's only one)."""

_KINDS = ("component", "operation")
_REFS = ("component", "pathRef", "dagRef", "hubRef", "urlRef")
_STRATEGIES: tuple[PatchStrategy, ...] = ("post_merge", "pre_merge", "replace", "isnull")
# Sections an operation shares with its component; the operation's are merged over.
_SHARED = (
    "name",
    "description",
    "tags",
    "presets",
    "queue",
    "namespace",
    "cache",
    "termination",
    "plugins",
    "build",
    "hooks",
    "isApproved",
    "cost",
    "template",
)
# Operation keys this module consumes; the rest are structured into `Operation`.
_CONSUMED = ("params", "matrix", "joins", "component", "runPatch", "patchStrategy", "isPreset")
# Keys rendered later, with another context: at hook time, per matrix run, per DAG node.
_OPERATION_UNRENDERED = ("params", "joins", "hooks", "component", "matrix", "conditions", "events")
_COMPONENT_UNRENDERED = (("inputs",), ("outputs",), ("hooks",))
_DAG_PARTS = ("operations", "components")
# pathRef files inside pathRef files: each level is a DAG inside a DAG, so 8 is plenty,
# and each costs a few dozen stack frames.
_MAX_PATH_REFS = 8
# Polyaxon runs `build:` (a hub component such as kaniko) before the run and sets the
# image it pushed on the run's containers. polytrack fetches no hub component and runs one
# workload per operation, so it refuses the section rather than run a stale image or fail
# later on the image the build would have set.
_NO_BUILD = (
    "polytrack does not run build: sections (Polyaxon's image build before the run, "
    "such as kaniko): build and push the image first, set it as the containers' image, "
    "and remove the section"
)
# The keys of a param written in full; a mapping with none of them is a short-form value.
_PARAM_KEYS = frozenset(
    {
        "value",
        "ref",
        "contextOnly",
        "context_only",
        "connection",
        "toInit",
        "to_init",
        "toEnv",
        "to_env",
    }
)


def load(
    paths: Sequence[str | os.PathLike[str]],
    params: Mapping[str, Any] | None = None,
    *,
    globals: Mapping[str, Any] | None = None,
    matrix_run: Mapping[str, Any] | None = None,
    dag_operation: str | None = None,
    ops: Mapping[str, Mapping[str, Any]] | None = None,
    joined: Mapping[str, Any] | None = None,
) -> Operation:
    """Load a Polyaxonfile and its presets into an `Operation` resolved for launching.

    Args:
        paths: the Polyaxonfile, then presets to patch it with, in order (`-f a -f b`).
            Messages name each file as given here.
        params: `-P name=value` params; they override `params:` in the file and are
            converted to their inputs' types: text as typed on a command line ("0.1",
            "true", "[1, 2]"), other values as YAML would give them.
        globals: values for `{{ globals.* }}`; without them those templates stay as written.
        matrix_run: the params of one run of the matrix (an item of `expand_matrix`); the
            operation returned is that run: params applied, templates rendered, no matrix.
        dag_operation: in a DAG, the operation `globals` belong to (its run id, its
            ports); the other operations keep their `{{ globals.* }}` for their own runs.
        ops: what DAG operations that ended recorded, by name (`{"outputs": {...},
            "inputs": {...}, "status": ..., "uuid": ..., "name": ...}`): params that read
            from them (`ref: ops.X`, `{{ ops.X.outputs.y }}`) and templates naming them
            are rendered; the rest wait as without it.
        joined: the values the operation's `joins` gathered, by param name (a list
            each), for the operation `dag_operation` names, else the top one.

    Raises:
        MissingParamsError: required inputs have no value.
        InvalidParamError: a param cannot be converted to its input's type.
        DagCycleError: a DAG's dependencies form a cycle.
        SpecError: anything else wrong, as `file:line field.path: what was expected`.

    Example:
        >>> op = load(["polyaxonfile.yaml"], {"lr": "0.1"})
        >>> op.params["lr"].value, op.component.run.container.args
        (0.1, ('--lr=0.1',))
    """
    if not paths:
        raise SpecError("no Polyaxonfile given")
    loading = _Loading(None if globals is None else dict(globals), dag_operation)
    loading.ops, loading.joined = ops, joined
    return loading.load(
        [Path(path) for path in paths],
        [os.fspath(path) for path in paths],
        dict(params or {}),
        matrix_run,
    )


class _Loading:
    """One `load()` call: the origins of everything read, and the globals to render with."""

    ops: Mapping[str, Mapping[str, Any]] | None = None  # see load()
    joined: Mapping[str, Any] | None = None

    def __init__(self, globals: dict[str, Any] | None, dag_operation: str | None = None) -> None:
        self.located = Located()
        self.globals = globals
        self.dag_operation = dag_operation
        # The files being resolved, outermost first: (real path, name as given).
        self.including: list[tuple[str, str]] = []

    def load(
        self,
        paths: list[Path],
        names: list[str],
        cli: dict[str, Any],
        matrix_run: Mapping[str, Any] | None,
    ) -> Operation:
        main = self.located.read(paths[0], names[0])
        self.including.append((os.path.realpath(paths[0]), names[0]))
        kind = self._header(main, names[0], preset=False)
        operation = self._as_operation(main) if kind == "component" else main
        presets = []
        for path, name in zip(paths[1:], names[1:], strict=True):
            preset = self.located.read(path, name)
            self._header(preset, name, preset=True)
            operation = self._patch(operation, preset)
            presets.append(preset)
        return self._operation(
            operation, cli=cli, dag_components=None, presets=presets, matrix_run=matrix_run
        )

    # -- files ---------------------------------------------------------------------------

    def _header(self, doc: Any, name: str, *, preset: bool) -> str | None:
        """Check `version` and `kind`; return the kind."""
        if not isinstance(doc, Mapping):
            reason = f"expected a mapping of sections, got {describe(doc)}"
            raise SpecError(reason, file=name, line=1)
        if "version" in doc:
            if doc["version"] not in (SPEC_VERSION, str(SPEC_VERSION)):
                raise self.located.error(
                    doc,
                    ("version",),
                    f"expected {SPEC_VERSION}, got {describe(doc['version'])}: polytrack reads "
                    f"version {SPEC_VERSION} of the Polyaxonfile specification",
                )
        elif not preset:
            raise self.located.error(
                doc,
                (),
                f'missing required field "version" (polytrack reads version {SPEC_VERSION})',
            )
        kind = doc.get("kind")
        if preset:
            if "kind" in doc and kind != "operation":
                raise self.located.error(
                    doc, ("kind",), f"a preset is an operation, got kind {describe(kind)}"
                )
            for key in _REFS:
                if key in doc:
                    raise self.located.error(
                        doc,
                        (key,),
                        "a preset patches the operation it is given with; it "
                        "cannot set the component (use runPatch to change its run)",
                    )
            return None
        if "kind" not in doc:
            raise self.located.error(
                doc, (), 'missing required field "kind" (component or operation)'
            )
        if kind not in _KINDS:
            raise self.located.error(
                doc, ("kind",), f"expected one of component, operation, got {describe(kind)}"
            )
        return str(kind)

    def _as_operation(self, component: dict[Any, Any]) -> dict[Any, Any]:
        """`{component: <file>}`: a component file run as an operation, as Polyaxon does."""
        operation: dict[Any, Any] = {"version": component["version"], "component": component}
        start = self.located.start(component)
        origin = self.located.entry(component, "version")
        if start is not None:
            self.located.begin(operation, start)
            self.located.note(operation, "component", attrs.evolve(start, path=()))
        if origin is not None:
            self.located.note(operation, "version", origin)
        return operation

    def _patch(self, operation: dict[Any, Any], preset: Mapping[Any, Any]) -> dict[Any, Any]:
        strategy = self._strategy(preset)
        patched = self.located.copy(operation)
        for key, value in preset.items():
            if key in ("version", "kind", "isPreset", "patchStrategy", "runPatch"):
                continue  # a preset's runPatch is applied to the run in turn, see _operation
            patched[key] = self._section(key, patched.get(key), value, strategy)
            origin = self.located.entry(preset, key)
            if origin is not None:
                self.located.note(patched, key, origin)
        return patched  # type: ignore[no-any-return]

    def _section(self, key: str, base: Any, patch: Any, strategy: PatchStrategy) -> Any:
        """Section `key` of an operation, patched as Polyaxon patches a whole section.

        `replace` takes the patch's section whole and `isnull` only fills a missing one;
        the merges go deep. A `matrix` or `schedule` of another kind replaces the old one.
        """
        if base is None or patch is None:
            return self.located.copy(patch if base is None else base)
        if strategy == "replace":
            return self.located.copy(patch)
        if strategy == "isnull":
            return self.located.copy(base)
        if (
            key in ("matrix", "schedule")
            and isinstance(base, Mapping)
            and isinstance(patch, Mapping)
            and base.get("kind") != patch.get("kind", base.get("kind"))
        ):
            return self.located.copy(patch)
        return self.located.merge(base, patch, strategy)

    def _strategy(self, operation: Mapping[Any, Any]) -> PatchStrategy:
        strategy = operation.get("patchStrategy", "post_merge")
        for known in _STRATEGIES:
            if strategy == known:
                return known
        raise self.located.error(
            operation,
            ("patchStrategy",),
            f"expected one of {', '.join(_STRATEGIES)}, got {describe(strategy)}",
        )

    # -- operations ------------------------------------------------------------------------

    def _operation(
        self,
        raw: Mapping[Any, Any],
        *,
        cli: Mapping[str, Any],
        dag_components: Mapping[str, Any] | None,
        template: bool = False,
        presets: Sequence[Mapping[Any, Any]] = (),
        matrix_run: Mapping[str, Any] | None = None,
    ) -> Operation:
        """`raw` resolved; a `pathRef` file it reads stays on `including` until then."""
        depth = len(self.including)
        try:
            return self._resolve(
                raw,
                cli=cli,
                dag_components=dag_components,
                template=template,
                presets=presets,
                matrix_run=matrix_run,
            )
        finally:
            del self.including[depth:]

    def _resolve(
        self,
        raw: Mapping[Any, Any],
        *,
        cli: Mapping[str, Any],
        dag_components: Mapping[str, Any] | None,
        template: bool,
        presets: Sequence[Mapping[Any, Any]],
        matrix_run: Mapping[str, Any] | None,
    ) -> Operation:
        ref = self._reference(raw, in_dag=dag_components is not None)
        strategy = self._strategy(raw)
        if ref in ("hubRef", "urlRef"):
            return self._unresolved(raw)
        component = self.located.copy(self._component(raw, ref, dag_components))
        for holder in (raw, component):
            if holder.get("build") is not None:
                raise self.located.error(holder, ("build",), _NO_BUILD)
        # Each runPatch applies to the run in turn, with the strategy of its own file.
        for holder in (raw, *presets):
            if "runPatch" in holder:
                patching = strategy if holder is raw else self._strategy(holder)
                component["run"] = self._run_patch(holder, component, patching)

        inputs = self._structure(component, ("inputs",), component.get("inputs"), tuple[IO, ...])
        outputs = self._structure(component, ("outputs",), component.get("outputs"), tuple[IO, ...])
        inputs, outputs = inputs or (), outputs or ()
        self._check_names(component, inputs, outputs)
        with templates_now():  # expanded when the runs are planned, before any starts
            matrix: Matrix | None = self._structure(raw, ("matrix",), raw.get("matrix"), Matrix)
        joins: tuple[Join, ...] | None = self._structure(
            raw, ("joins",), raw.get("joins"), tuple[Join, ...]
        )
        given: dict[str, Param] = dict(
            self._structure(raw, ("params",), self._long_form(raw), Mapping[str, Param]) or {}
        )
        if self.joined is not None and (
            raw.get("name") == self.dag_operation
            if dag_components is not None
            else self.dag_operation is None
        ):
            given.update(joined_params(self.joined, (*inputs, *outputs)))
        if matrix_run is not None:
            # One run of the matrix: its values are params; those no input takes feed
            # templates only, as the matrix would have.
            names = {io.name for io in (*inputs, *outputs)}
            for name, value in matrix_run.items():
                given[name] = Param(value=value, context_only=None if name in names else True)
            cli = {name: text for name, text in cli.items() if name not in matrix_run}
            matrix = None
        params, waiting = self._params(
            raw,
            component,
            inputs,
            outputs,
            given,
            cli,
            matrix,
            joins,
            template=template,
            in_dag=dag_components is not None,
        )
        context = self._context(component, inputs, outputs, params, waiting)
        operation = self._build(raw, component, context, strategy)
        if matrix is not None and operation.component is not None:
            self._check_matrix(raw, matrix, operation.component)
        return attrs.evolve(operation, params=params, matrix=matrix, joins=joins)

    def _reference(self, raw: Mapping[Any, Any], *, in_dag: bool) -> str:
        """Which of component, pathRef, dagRef, hubRef, urlRef the operation uses."""
        refs = [key for key in _REFS if raw.get(key) is not None]
        if "component" in refs and set(refs) <= {"component", "hubRef", "urlRef"}:
            # An operation Polyaxon compiled keeps the hubRef it came from beside the
            # component it fetched: the component is what runs.
            refs = ["component"]
        if not refs and any(key in raw for key in ("run", "inputs", "outputs")):
            raise self.located.error(
                raw,
                (),
                "an operation runs a component: put run, inputs and outputs under component:",
            )
        if len(refs) != 1:
            found = ", ".join(refs) if refs else "none"
            raise self.located.error(
                raw, (), f"set exactly one of {', '.join(_REFS)} (got {found})"
            )
        if refs[0] in ("hubRef", "urlRef") and not in_dag:
            raise self.located.error(
                raw,
                (refs[0],),
                f"polytrack cannot fetch {refs[0]} components; inline the component "
                f"(component:) or point at its file (pathRef:)",
            )
        return refs[0]

    def _build(
        self,
        raw: Mapping[Any, Any],
        component: dict[Any, Any],
        context: Context,
        strategy: PatchStrategy,
    ) -> Operation:
        """Render the operation and its component, then structure both into the models."""
        problems: list[SpecError] = []
        run = component.get("run")
        is_dag = isinstance(run, Mapping) and run.get("kind") == "dag"
        skip = {*_COMPONENT_UNRENDERED, *((("run", part) for part in _DAG_PARTS) if is_dag else ())}
        self._render(component, component, (), context, skip, problems)
        fields = self.located.copy(self.located.without(raw, *_CONSUMED))
        self._render(
            fields, fields, (), context, {(key,) for key in _OPERATION_UNRENDERED}, problems
        )
        if problems:
            raise _together(problems)

        for key in _SHARED:
            if key in component or key in fields:
                fields[key] = self._section(key, component.get(key), fields.get(key), strategy)
                origin = self.located.entry(fields, key) or self.located.entry(component, key)
                if origin is not None:
                    self.located.note(fields, key, origin)
        for holder in (fields, component):
            if holder.get("version") == str(SPEC_VERSION):
                holder["version"] = SPEC_VERSION
        shaped = self.located.without(component, "run")
        if isinstance(run, Mapping) and is_dag:
            shaped["run"] = self.located.without(run, *_DAG_PARTS)  # resolved on their own
        elif "run" in component:
            shaped["run"] = run
        operation: Operation
        built: Component
        operation, built = self._structure_all(
            (fields, fields, Operation), (component, shaped, Component)
        )
        if is_dag:
            assert isinstance(built.run, Dag) and isinstance(run, Mapping)
            if isinstance(built.run.concurrency, str):  # a template kept for run time
                raise self.located.error(
                    component,
                    ("run", "concurrency"),
                    f"expected an integer of at least 1, got {describe(built.run.concurrency)}: "
                    "a dag's concurrency is used when its runs are planned, before any starts",
                )
            operations = self._dag(component, run)
            built = attrs.evolve(built, run=attrs.evolve(built.run, operations=operations))
        return attrs.evolve(operation, component=built)

    def _component(
        self, raw: Mapping[Any, Any], ref: str, dag_components: Mapping[str, Any] | None
    ) -> Mapping[Any, Any]:
        if ref == "pathRef":
            path_ref = raw[ref]
            if not isinstance(path_ref, str):
                raise self.located.error(raw, (ref,), f"expected a path, got {describe(path_ref)}")
            # Relative to the file that names it, as Polyaxon resolves it.
            origin = self.located.entry(raw, ref)
            shown = os.path.join(os.path.dirname(origin.file), path_ref) if origin else path_ref
            if not Path(shown).is_file():
                raise self.located.error(raw, (ref,), f"no component file at {shown}")
            self._include(raw, shown)
            doc = self.located.read(Path(shown), shown)
            if self._header(doc, shown, preset=False) != "component":
                raise self.located.error(
                    doc, ("kind",), f"pathRef must point at a component, got kind {doc['kind']}"
                )
            return doc  # type: ignore[no-any-return]
        if ref == "dagRef":
            name = raw[ref]
            if not isinstance(name, str):
                raise self.located.error(
                    raw, (ref,), f"expected the name of a dag component, got {describe(name)}"
                )
            if dag_components is None:
                raise self.located.error(
                    raw, (ref,), "dagRef names a component of the enclosing dag; there is none"
                )
            if name not in dag_components:
                known = ", ".join(dag_components) or "none"
                raise self.located.error(
                    raw,
                    (ref,),
                    f"no component named {describe(name)} in the dag's components (it has {known})",
                )
            component = dag_components[name]
        else:
            component = raw[ref]
        if not isinstance(component, Mapping):
            raise self.located.error(raw, (ref,), f"expected a mapping, got {describe(component)}")
        if "kind" in component and component["kind"] != "component":
            raise self.located.error(
                component, ("kind",), f"expected component, got {describe(component['kind'])}"
            )
        return component

    def _include(self, raw: Mapping[Any, Any], shown: str) -> None:
        """Note that `shown` is being read for a pathRef; refuse a cycle or a long chain.

        A DAG operation may itself point at a component file with a DAG: a file that
        leads back to one being read would be read forever.
        """
        real = os.path.realpath(shown)
        reals = [path for path, _ in self.including]
        if real in reals:
            names = [name for _, name in self.including[reals.index(real) :]]
            chain = " -> ".join([*names, shown])
            raise self.located.error(
                raw, ("pathRef",), f"pathRef leads back to a file that refers to it: {chain}"
            )
        if len(self.including) > _MAX_PATH_REFS:
            raise self.located.error(
                raw,
                ("pathRef",),
                f"pathRef components nested more than {_MAX_PATH_REFS} files deep",
            )
        self.including.append((real, shown))

    def _run_patch(
        self, raw: Mapping[Any, Any], component: Mapping[Any, Any], strategy: PatchStrategy
    ) -> Any:
        patch, run = raw["runPatch"], component.get("run")
        if not isinstance(patch, Mapping):
            raise self.located.error(
                raw, ("runPatch",), f"expected a mapping, got {describe(patch)}"
            )
        if not isinstance(run, Mapping):
            raise self.located.error(raw, ("runPatch",), "runPatch needs a component with a run")
        if "kind" in patch and patch["kind"] != run.get("kind"):
            raise self.located.error(
                raw,
                ("runPatch", "kind"),
                f"runPatch cannot change the run kind {describe(run.get('kind'))} "
                f"to {describe(patch['kind'])}",
            )
        return self.located.merge(run, patch, strategy)

    def _unresolved(self, raw: Mapping[Any, Any]) -> Operation:
        """A DAG operation whose component lives elsewhere (hub, url): checked as written."""
        fields = self.located.without(raw, *_CONSUMED)
        operation: Operation = self._structure(fields, (), fields, Operation)
        with templates_now():
            matrix = self._structure(raw, ("matrix",), raw.get("matrix"), Matrix)
        joins = self._structure(raw, ("joins",), raw.get("joins"), tuple[Join, ...])
        params = self._structure(raw, ("params",), self._long_form(raw), Mapping[str, Param])
        return attrs.evolve(operation, params=dict(params or {}), matrix=matrix, joins=joins)

    # -- params ------------------------------------------------------------------------------

    def _long_form(self, raw: Mapping[Any, Any]) -> Any:
        """`params:` with each short-form value (`loss: mse`) written `loss: {value: mse}`.

        Polyaxon takes both; a mapping is a param when it has a param's key (`value`,
        `ref`, ...) or is empty (a param with nothing set), else the value of a `dict` input.
        """
        params = raw.get("params")
        if not isinstance(params, Mapping):
            return params
        long = self.located.without(params)
        for name, item in params.items():
            if isinstance(item, Mapping) and (not item or not _PARAM_KEYS.isdisjoint(item)):
                continue
            wrapped = {"value": item}
            origin = self.located.entry(params, name)
            if origin is not None:
                self.located.begin(wrapped, origin)
                self.located.note(wrapped, "value", origin)
            long[name] = wrapped
        return long

    def _check_names(
        self, component: Mapping[Any, Any], inputs: Sequence[IO], outputs: Sequence[IO]
    ) -> None:
        seen: set[str] = set()
        for section, ios in (("inputs", inputs), ("outputs", outputs)):
            for index, io in enumerate(ios):
                if io.name in seen:
                    raise self.located.error(
                        component,
                        (section, index, "name"),
                        f"{describe(io.name)} is declared twice among inputs and outputs",
                    )
                seen.add(io.name)

    def _params(
        self,
        raw: Mapping[Any, Any],
        component: Mapping[Any, Any],
        inputs: Sequence[IO],
        outputs: Sequence[IO],
        given: dict[str, Param],
        cli: Mapping[str, Any],
        matrix: Matrix | None,
        joins: Sequence[Join] | None,
        *,
        template: bool,
        in_dag: bool,
    ) -> tuple[dict[str, Param], set[str]]:
        """Every input's and output's value, converted; and the names known only later."""
        declared = {io.name: io for io in (*inputs, *outputs)}
        from_cli = {name: Param(value=text) for name, text in cli.items()}
        problems: list[SpecError] = []
        for name, offered in {**given, **from_cli}.items():
            if name not in declared and not offered.context_only:
                problems.append(
                    self._param_problem(raw, name, cli, self._unexpected(name, declared))
                )
        later = matrix_param_names(matrix) if matrix is not None else set()
        later |= {name for join in joins or () for name in join.params or {}}
        params: dict[str, Param] = {}
        waiting: set[str] = set()
        missing: list[tuple[IO, str]] = []
        for section, ios in (("inputs", inputs), ("outputs", outputs)):
            for io in ios:
                param: Param | None = from_cli.get(io.name) or given.get(io.name)
                if param is None:
                    if io.name in later:
                        waiting.add(io.name)
                    elif not io.is_optional and not io.delayed(default=section == "outputs"):
                        if template:
                            waiting.add(io.name)
                        else:
                            missing.append((io, section))
                    else:
                        params[io.name] = Param(
                            value=_default(io),
                            connection=io.connection,
                            to_init=io.to_init,
                            to_env=io.to_env,
                        )
                    continue
                param = read_ref(param, self.ops)
                if param.is_ref or waits(param.value):
                    # Read from another run, or a template over values known only then:
                    # converted and checked at run time, as Polyaxon does.
                    waiting.add(io.name)
                    value = param.value
                else:
                    param = _image(io, param)
                    try:
                        value = io.validate(convert(io.type, param.value, is_list=io.is_list))
                    except FieldError as exc:
                        problems.append(self._invalid(raw, component, io, section, cli, exc))
                        continue
                params[io.name] = Param(
                    value=value,
                    ref=param.ref,
                    context_only=param.context_only,
                    connection=param.connection or io.connection,
                    to_init=io.to_init if param.to_init is None else param.to_init,
                    to_env=param.to_env or io.to_env,
                )
        for name, param in given.items():
            if name not in declared and param.context_only:
                params[name] = param
                if param.is_ref or waits(param.value):
                    waiting.add(name)
        if problems:
            raise _together(problems)
        if missing:
            raise self._missing(raw, component, missing, in_dag=in_dag)
        # Matrix and join params feed templates even when no input declares them.
        return params, waiting | (later - set(params))

    def _unexpected(self, name: str, declared: Mapping[str, IO]) -> str:
        known = ", ".join(declared) or "none"
        return (
            f"unexpected param: the component has no input or output {describe(name)} "
            f"(it has {known}); mark it contextOnly to pass it to templates only"
        )

    def _param_problem(
        self, raw: Mapping[Any, Any], name: str, cli: Mapping[str, Any], reason: str
    ) -> SpecError:
        if name in cli:
            return SpecError(reason, path=f"-P {name}={cli[name]}")
        return self.located.error(raw, ("params", name), reason)

    def _invalid(
        self,
        raw: Mapping[Any, Any],
        component: Mapping[Any, Any],
        io: IO,
        section: str,
        cli: Mapping[str, Any],
        exc: FieldError,
    ) -> InvalidParamError:
        if io.name in cli:
            index = next(i for i, item in enumerate(component[section]) if item["name"] == io.name)
            declared = self.located.error(component, (section, index), "")
            where = f"{declared.file}:{declared.line}" if declared.file else "the component"
            reason = f"{exc}; {section[:-1]} {describe(io.name)} is declared at {where}"
            return InvalidParamError(reason, name=io.name, path=f"-P {io.name}={cli[io.name]}")
        placed = self.located.error(raw, ("params", io.name, "value", *exc.subpath), str(exc))
        return InvalidParamError(
            placed.reason, name=io.name, file=placed.file, line=placed.line, path=placed.path
        )

    def _missing(
        self,
        raw: Mapping[Any, Any],
        component: Mapping[Any, Any],
        missing: Sequence[tuple[IO, str]],
        *,
        in_dag: bool,
    ) -> MissingParamsError:
        listed = ", ".join(f"{io.name} ({io.type or 'any type'})" for io, _ in missing)
        what = "input" if all(section == "inputs" for _, section in missing) else "input/output"
        plural = "s" if len(missing) > 1 else ""
        them = "them" if plural else "it"
        if in_dag:
            # The operation, not the shared component, is what lacks the value.
            named = f' of component "{component["name"]}"' if "name" in component else ""
            reason = f"no value for the required {what}{plural} {listed}{named}: pass {them} "
            placed = self.located.error(raw, (), reason + "under the operation's params")
        else:
            reason = f"no value for the required {what}{plural} {listed}: pass {them} "
            placed = self.located.error(
                component, (missing[0][1],), reason + "with -P NAME=VALUE or under params"
            )
        return MissingParamsError(
            placed.reason,
            names=tuple(io.name for io, _ in missing),
            file=placed.file,
            line=placed.line,
            path=placed.path,
        )

    # -- templates ---------------------------------------------------------------------------

    def _context(
        self,
        component: Mapping[Any, Any],
        inputs: Sequence[IO],
        outputs: Sequence[IO],
        params: Mapping[str, Param],
        waiting: set[str],
    ) -> Context:
        declared = {
            io.name: (io, section, index)
            for section, ios in (("inputs", inputs), ("outputs", outputs))
            for index, io in enumerate(ios)
        }
        values: dict[str, Any] = {}
        views: dict[str, Any] = {}  # a ParamView each, and `as_args`
        for name, param in params.items():
            if name in waiting:
                continue
            io, section, index = declared.get(name, (None, "", 0))
            as_arg = self._as_arg(component, io, section, index, name, param.value)
            views[name] = ParamView(
                value=param.value,
                as_arg=as_arg,
                type=io.type if io is not None else None,
                connection=param.connection,
                shown=display(param.value),
            )
            if io is not None and io.is_flag:
                values[name] = f"--{name}" if param.value else ""
            else:
                values[name] = param.value
        later = set(waiting)
        named = [io.name for io in inputs]
        if "as_args" not in declared:
            # `{{ params.as_args }}`: every input with a value as `--name=value`, in order.
            if waiting.intersection(named):
                later.add("as_args")
            else:
                args = (views[name].as_arg for name in named if name in views)
                views["as_args"] = " ".join(arg for arg in args if arg)
        values["params"] = Namespace("params", views, defer=frozenset(later))
        if self.globals is not None:
            values["globals"] = Namespace("globals", self.globals, defer_missing=True)
        if self.ops is not None:
            values["ops"] = ops_namespace(self.ops)
        return Context(values, deferred=frozenset(waiting))

    def _as_arg(
        self,
        component: Mapping[Any, Any],
        io: IO | None,
        section: str,
        index: int,
        name: str,
        value: Any,
    ) -> str:
        if value is None:
            return ""
        if io is not None and io.arg_format is not None:
            try:
                return display(render(io.arg_format, Context({name: value})))
            except FieldError as exc:
                spot = (section, index, "argFormat")
                raise self.located.error(component, spot, str(exc)) from None
        if io is not None and io.is_flag:
            return f"--{name}" if value else ""
        return f"--{name}={display(value)}"

    def _render(
        self,
        root: Any,
        container: Any,
        path: tuple[Key, ...],
        context: Context,
        skip: set[tuple[Key, ...]],
        problems: list[SpecError],
    ) -> None:
        entries = container.items() if isinstance(container, Mapping) else enumerate(container)
        for key, value in list(entries):
            where = (*path, key)
            if where in skip:
                continue
            if isinstance(value, str):
                try:
                    rendered = render(value, context)
                except FieldError as exc:
                    problems.append(self.located.error(root, where, str(exc)))
                    continue
                if rendered is not value:
                    container[key] = rendered
            elif isinstance(value, Mapping | list):
                self._render(root, value, where, context, skip, problems)

    # -- structuring ---------------------------------------------------------------------------

    def _structure(self, root: Any, path: tuple[Key, ...], value: Any, type_: Any) -> Any:
        if value is None:
            return None
        try:
            return spec_converter.structure(value, type_)
        except Exception as exc:
            raise self._problems(root, path, exc) from None

    def _structure_all(self, *jobs: tuple[Any, Any, type[Any]]) -> list[Any]:
        """Structure several values, reporting the problems of all of them at once."""
        built: list[Any] = []
        problems: list[SpecError] = []
        for root, value, type_ in jobs:
            try:
                built.append(spec_converter.structure(value, type_))
            except Exception as exc:
                problems.extend(self._problems(root, (), exc).problems)
        if problems:
            raise _together(problems)
        return built

    def _problems(self, root: Any, path: tuple[Key, ...], exc: Exception) -> SpecError:
        # The structured value may be a trimmed copy of `root`; paths in both agree.
        found = [
            self.located.error(root, (*path, *where), reason)
            for where, reason in structure_errors(exc)
        ]
        return _together(found)

    # -- checks of the whole -----------------------------------------------------------------

    def _check_matrix(self, raw: Mapping[Any, Any], matrix: Matrix, component: Component) -> None:
        problems: list[SpecError] = []
        if isinstance(matrix, MappingMatrix):
            for index, values in enumerate(matrix.values):
                for name, value in values.items():
                    io = component.io(name)
                    if io is not None:
                        where = ("matrix", "values", index, name)
                        check = functools.partial(convert, io.type, value, is_list=io.is_list)
                        self._try(raw, where, problems, check)
        else:
            for name, param in (matrix.params or {}).items():
                io = component.io(name)
                if io is None or io.is_list:
                    continue
                if isinstance(param, HpChoice | HpPChoice):
                    options = (
                        param.value if isinstance(param, HpChoice) else [o for o, _ in param.value]
                    )
                    for index, option in enumerate(options):
                        spot = ("matrix", "params", name, "value", index)
                        check = functools.partial(convert, io.type, option)
                        self._try(raw, spot, problems, check)
                elif io.type not in (None, "any", "int", "float"):
                    problems.append(
                        self.located.error(
                            raw,
                            ("matrix", "params", name, "kind"),
                            f"{param.kind} gives numbers, but input {describe(name)} "
                            f"has type {io.type}",
                        )
                    )
        if problems:
            raise _together(problems)

    def _try(
        self,
        root: Any,
        path: tuple[Key, ...],
        problems: list[SpecError],
        check: Callable[[], Any],
    ) -> None:
        try:
            check()
        except FieldError as exc:
            problems.append(self.located.error(root, (*path, *exc.subpath), str(exc)))

    def _dag(self, component: Mapping[Any, Any], run: Mapping[Any, Any]) -> tuple[Operation, ...]:
        at = ("run",)
        raw_operations, raw_components = run.get("operations"), run.get("components")
        if not raw_operations:
            raise self.located.error(
                component,
                at,
                'missing required field "operations": a dag runs at least one operation',
            )
        if not isinstance(raw_operations, list):
            raise self.located.error(
                component, (*at, "operations"), f"expected a list, got {describe(raw_operations)}"
            )
        library = self._library(component, raw_components)
        problems: list[SpecError] = []
        resolved: list[tuple[int, Operation]] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_operations):
            where = (*at, "operations", index)
            if not isinstance(raw, Mapping):
                problems.append(
                    self.located.error(component, where, f"expected a mapping, got {describe(raw)}")
                )
                continue
            name = raw.get("name")
            if not isinstance(name, str):
                problems.append(
                    self.located.error(
                        component,
                        where,
                        'missing required field "name" (each dag operation needs one)',
                    )
                )
                continue
            if name in seen:
                problems.append(
                    self.located.error(
                        component, (*where, "name"), f"operation {describe(name)} is defined twice"
                    )
                )
                continue
            seen[name] = index
            own = self.globals
            if self.dag_operation is not None and name != self.dag_operation:
                self.globals = None  # another run's globals would not be this one's
            try:
                operation = self._operation(raw, cli={}, dag_components=library)
            except SpecError as exc:
                problems.extend(exc.problems)
                continue
            finally:
                self.globals = own
            resolved.append((index, operation))
        used = {operation.dag_ref for _, operation in resolved}
        for name, raw in library.items():
            if name not in used:
                try:
                    self._operation(self._wrap(raw), cli={}, dag_components=library, template=True)
                except SpecError as exc:
                    problems.extend(exc.problems)
        if problems:
            raise _together(problems)
        self._check_links(component, resolved, seen)
        return tuple(operation for _, operation in resolved)

    def _library(self, component: Mapping[Any, Any], raw: Any) -> dict[str, Any]:
        """The dag's reusable components by name."""
        at = ("run", "components")
        if raw is None:
            return {}
        if not isinstance(raw, list):
            raise self.located.error(component, at, f"expected a list, got {describe(raw)}")
        library: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise self.located.error(
                    component, (*at, index), f"expected a mapping, got {describe(item)}"
                )
            name = item.get("name")
            if not isinstance(name, str):
                raise self.located.error(
                    component, (*at, index), 'missing required field "name" (dagRef uses it)'
                )
            if name in library:
                raise self.located.error(
                    component, (*at, index, "name"), f"component {describe(name)} is defined twice"
                )
            library[name] = item
        return library

    def _wrap(self, component: Any) -> dict[str, Any]:
        operation = {"component": component}
        start = self.located.start(component)
        if start is not None:
            self.located.begin(operation, start)
            self.located.note(operation, "component", start)
        return operation

    def _check_links(
        self,
        component: Mapping[Any, Any],
        resolved: Sequence[tuple[int, Operation]],
        seen: Mapping[str, int],
    ) -> None:
        problems: list[SpecError] = []
        known = ", ".join(seen)
        for index, operation in resolved:
            spot = ("run", "operations", index)
            for position, name in enumerate(operation.dependencies or ()):
                if name not in seen:
                    problems.append(
                        self.located.error(
                            component,
                            (*spot, "dependencies", position),
                            f"unknown operation {describe(name)} (the dag has {known})",
                        )
                    )
            for param_name, param in operation.params.items():
                if param.upstream is not None and param.upstream not in seen:
                    problems.append(
                        self.located.error(
                            component,
                            (*spot, "params", param_name),
                            f"reads from operation {describe(param.upstream)}, "
                            f"which the dag does not have (it has {known})",
                        )
                    )
        if problems:
            raise _together(problems)
        graph = {op.name: op.upstream for _, op in resolved if op.name is not None}
        cycle = find_cycle(graph)
        if cycle is None:
            return
        index = seen[cycle[0]]
        operation = next(op for i, op in resolved if i == index)
        blame: tuple[Key, ...] = ("run", "operations", index)
        if cycle[1] in (operation.dependencies or ()):
            blame = (*blame, "dependencies", list(operation.dependencies or ()).index(cycle[1]))
        else:
            reader = next(name for name, p in operation.params.items() if p.upstream == cycle[1])
            blame = (*blame, "params", reader)
        placed = self.located.error(component, blame, "")
        raise DagCycleError(
            f"the operations form a cycle: {' -> '.join(cycle)} (each waits for the next)",
            cycle=tuple(cycle),
            file=placed.file,
            line=placed.line,
            path=placed.path,
        )


def _image(io: IO, param: Param) -> Param:
    """An `image` param given as `{name, connection}`: the name, and the registry's connection."""
    value = param.value
    if io.type != "image" or io.is_list or not isinstance(value, Mapping):
        return param
    if "name" not in value or not set(value) <= {"name", "connection"}:
        return param  # convert() says what an image is
    connection = value.get("connection")
    return attrs.evolve(param, value=value["name"], connection=connection or param.connection)


def _default(io: IO) -> Any:
    """An input's default value, converted to its type (templates are kept as written)."""
    if isinstance(io.value, str) and "{{" in io.value:
        return io.value
    return convert(io.type, io.value, is_list=io.is_list)


def _together(problems: Sequence[SpecError]) -> SpecError:
    """One error for several problems, in file and line order; a lone one as it is."""
    unique = {(p.file, p.line, p.path, p.reason): p for p in problems}
    ordered = sorted(unique.values(), key=lambda p: (p.file or "", p.line or 0, p.path))
    if len(ordered) == 1:
        return ordered[0]
    first, *rest = ordered
    return SpecError(
        first.reason, file=first.file, line=first.line, path=first.path, more=tuple(rest)
    )
