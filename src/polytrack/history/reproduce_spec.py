"""A Polyaxonfile that runs a recorded run again on Kubernetes (`reproduce --polyaxonfile`).

A `version: 1.1` job component: a git init at the run's commit, its stored diff, params and
pinned requirements as file inits, the params as typed inputs, and a Python image of the
run's version. The result loads with polytrack's own `spec` loader (`polytrack check`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
from collections.abc import Mapping
from typing import Any, Final

from polytrack.errors import ReproduceError
from polytrack.history.reproduce import (
    PARAMS_FILE,
    determinism_variables,
    git_state_of,
    path_within,
    require_within,
)
from polytrack.history.runs import RunView
from polytrack.models import ParamValue
from polytrack.redact import REDACTED

__all__ = ["polyaxonfile"]

_TEMPLATE_MARKS: Final = ("{{", "{%", "{#")
_IO_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_RESERVED_IO_NAMES: Final = ("globals", "params", "connections")


def polyaxonfile(run: RunView, *, image: str | None = None) -> str:
    """A Polyaxonfile (a `version: 1.1` component, `run.kind: job`) that runs the same thing
    on Kubernetes, for `polytrack run` or Polyaxon.

    What it holds: a `git` init at the run's remote and commit; `file` inits writing the
    stored diff, the recorded packages pinned (`requirements`), and the params as JSON;
    the params as typed, optional `inputs` whose values are the run's (`-P name=value`
    changes the params file); a container on `image` (default `python:<major.minor>` of
    the run's Python: polytrack records no image) that applies the diff, installs the
    packages, and runs the recorded entrypoint with the recorded argv, as a run that
    reproduces this one (`POLYTRACK_REPRODUCES`). Dotted param names become inputs with
    `_` in place of the characters an input name cannot have. Packages with a local
    version (`1.0+local`, an editable install) are on no index: they are left commented
    out. Redacted arguments stay `[REDACTED]`: a comment at the top says to fill them in.

    Raises:
        ReproduceError: no git state, no remote to clone, or a command that cannot be
            replayed (notebook, REPL, script outside the repository); a diff that is not
            UTF-8 text.

    Example:
        >>> Path("repro.yaml").write_text(polyaxonfile(polytrack.get_run("a1b2")))
    """
    state = git_state_of(run)
    assert state.root is not None and state.commit is not None
    if state.remote is None:
        raise ReproduceError(
            f"run {run.id}'s repository has no remote: a cluster cannot clone it (push it, "
            "then record the run again)"
        )
    snapshot = run.snapshot()
    code = snapshot.code
    if code is None or code.notebook is not None or code.entrypoint is None:
        raise ReproduceError(f"run {run.id} has no script or module to run again")
    inside = path_within(code.cwd, state.root)
    cwd = "." if inside is None else inside.as_posix()  # outside: from the repository's root
    if code.entrypoint.startswith("-m "):
        command = ["python", "-m", code.entrypoint.removeprefix("-m ")]
    else:
        entry = require_within(code.entrypoint, state.root, "its script").as_posix()
        command = ["python", os.path.relpath(entry, cwd) if cwd != "." else entry]
    environment = snapshot.environment
    if image is None:
        version = environment.python if environment is not None else platform.python_version()
        image = "python:" + ".".join(version.split(".")[:2])

    comments = [
        f"Reproduces polytrack run {run.id} ({run.project}/{run.name}): commit "
        f"{state.commit} of {state.remote}"
        + (" with its uncommitted diff." if state.diff_file else "."),
        "Written by `polytrack reproduce --polyaxonfile`; run it with `polytrack run -f`.",
    ]
    if any(REDACTED in arg for arg in code.argv):
        comments.append(
            f"The recorded arguments hold redacted values ({REDACTED}): put them in (from a "
            "Secret) before running it."
        )
    if state.untracked:
        comments.append(
            "The run's untracked files are not restored: "
            + ", ".join(state.untracked[:5])
            + (" ..." if len(state.untracked) > 5 else "")
        )

    inputs, params_json = _inputs(run)
    init: list[dict[str, Any]] = [{"git": {"url": state.remote, "revision": state.commit}}]
    script = ["set -eu", 'FILES="{{ globals.context_path }}/files"']
    if state.diff_file is not None:
        diff = _diff_text(run)
        init.append({"file": {"filename": "polytrack-run.diff", "content": diff}})
        script.append('git apply --whitespace=nowarn "$FILES/polytrack-run.diff"')
        if state.diff_truncated:
            comments.append("The run's diff was cut when recorded: only part of it is applied.")
    if environment is not None and environment.packages:
        init.append(
            {
                "file": {
                    "filename": "polytrack-requirements.txt",
                    "content": _requirements(environment.packages),
                }
            }
        )
        script.append('pip install --no-cache-dir -r "$FILES/polytrack-requirements.txt"')
    if params_json is not None:
        init.append({"file": {"filename": PARAMS_FILE, "content": params_json}})
        script.append(f'cp "$FILES/{PARAMS_FILE}" {PARAMS_FILE}')
    if cwd != ".":
        script.append(f"cd {shlex.quote(cwd)}")
    script.append("exec " + shlex.join([*command, *code.argv[1:]]))
    env = [{"name": "POLYTRACK_REPRODUCES", "value": run.id}]
    env += [{"name": k, "value": v} for k, v in sorted(determinism_variables(run).items())]
    document: dict[str, Any] = {
        "version": 1.1,
        "kind": "component",
        "name": _dns_label(f"reproduce-{run.id}"),
        "description": f"Reproduces polytrack run {run.id} ({run.project}/{run.name})",
        "tags": ["polytrack-reproduce"],
    }
    if inputs:
        document["inputs"] = inputs
    document["run"] = {
        "kind": "job",
        "init": init,
        "container": {
            "image": image,
            "command": ["/bin/sh", "-c"],
            "args": ["\n".join(script) + "\n"],
            "env": env,
        },
    }
    return "".join(f"# {line}\n" for line in comments) + _yaml(document)


def _inputs(run: RunView) -> tuple[list[dict[str, Any]], str | None]:
    """The params as inputs, and the template of the params file that they fill."""
    inputs: list[dict[str, Any]] = []
    lines: list[str] = []
    taken: set[str] = set()
    for key, value in sorted(run.params.items()):
        if _holds_template(value):
            # A value that itself looks like a template would be rendered: kept literal.
            lines.append(f"  {json.dumps(key)}: {_raw(json.dumps(value))}")
            continue
        name = _input_name(key, taken)
        taken.add(name)
        entry: dict[str, Any] = {"name": name, "type": _input_type(value)}
        if value is not None:
            entry["value"] = value
        entry["isOptional"] = True
        entry["description"] = f"params.{key} of run {run.id}"
        inputs.append(entry)
        lines.append(f"  {json.dumps(key)}: {{{{ {name} | tojson }}}}")
    if not lines:
        return inputs, None
    return inputs, "{\n" + ",\n".join(lines) + "\n}\n"


def _holds_template(value: ParamValue) -> bool:
    if isinstance(value, str):
        return any(mark in value for mark in _TEMPLATE_MARKS)
    if isinstance(value, list):
        return any(_holds_template(item) for item in value)
    return False


def _input_name(key: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", key)
    if not _IO_NAME.fullmatch(name) or name in _RESERVED_IO_NAMES:
        name = f"p_{name}"
    unique, count = name, 2
    while unique in taken:
        unique, count = f"{name}_{count}", count + 1
    return unique


def _input_type(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "list"
    return "str"  # and None: an optional str without a value


def _raw(text: str) -> str:
    """`text` shielded from template rendering; kept whole, trailing newline included."""
    return "{% raw %}" + text + "{% endraw %}"


def _diff_text(run: RunView) -> str:
    patch = run.diff() or b""
    try:
        text = patch.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReproduceError(
            f"run {run.id}'s diff is not UTF-8 text: it cannot go into a Polyaxonfile "
            "(commit and push the changes instead)"
        ) from exc
    if "{% endraw %}" in text:
        raise ReproduceError(f"run {run.id}'s diff holds '{{% endraw %}}': it cannot be quoted")
    return _raw(text) if any(mark in text for mark in _TEMPLATE_MARKS) else text


def _requirements(packages: Mapping[str, str]) -> str:
    lines = []
    for name, version in sorted(packages.items()):
        if name == "pip":
            continue  # the image's own pip installs the rest
        if "+" in version:
            lines.append(f"# {name}=={version}: a local build, on no package index")
        else:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:63].rstrip("-") or "reproduce"


def _yaml(data: Any) -> str:
    """YAML with multi-line strings (the script, the diff) as literal blocks."""
    import yaml  # the spec loader's dependency; needed only for a Polyaxonfile

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
