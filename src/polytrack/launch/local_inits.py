"""The `init` section of an operation, done on this machine for `polytrack run --local`.

What Kubernetes init containers do into `/polytrack`, done into a run's local context
directory (`<home>/local/<run id>`):

- `git`: a clone into `code/<repo>` (or the init's `path`); the repository the command
  runs in, with no `revision`, is cloned from its local directory at the commit the
  command started from, with its uncommitted diff applied (as on Kubernetes);
- `file` and `dockerfile`: their content written into `files/` and `build/`;
- `artifacts` and `paths`: copied from a local path, or an fsspec URL (`s3://...`, with
  the `s3` extra), into `artifacts/`. A `connection` names a Kubernetes Secret that is
  not here: refused.

Inputs with `toInit` (a `git` or `artifacts` value) add their init, as on Kubernetes.
The first git checkout is the process's working directory, else the context directory.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polytrack import spec
from polytrack.errors import LaunchError
from polytrack.launch.manifests import GitSource, _dockerfile_text, _same_repo

__all__ = ["prepare"]


def prepare(
    operation: spec.Operation,
    context: Path,
    *,
    git: GitSource | None = None,
    tree: Path | None = None,
    environ: Mapping[str, str] | None = None,
    note: Callable[[str], None] = lambda text: None,
) -> Path:
    """Do `operation`'s inits into `context` (made if absent); return the working directory.

    Args:
        git: the working tree the command runs in: a git init of its repository without
            a `revision` checks out `git.commit` with `git.diff` applied.
        tree: that working tree's directory, cloned instead of its remote.

    Raises:
        LaunchError: an init cannot be done here (git missing or failing, a connection,
            a path that is not there, a kind of init only Polyaxon's stores serve).
    """
    component = operation.component
    assert component is not None
    run = component.run
    inits = [*(getattr(run, "init", None) or ()), *_param_inits(operation, note)]
    context.mkdir(parents=True, exist_ok=True)
    (context / "artifacts" / "outputs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if environ is None else environ)
    workdir: Path | None = None
    for index, init in enumerate(inits):
        spot = f"init[{index}]"
        handler = init.handler
        if handler == "git":
            assert init.git is not None
            dest = _git(init, init.git, context, git, tree, env, spot)
            workdir = workdir or dest
        elif handler in ("artifacts", "paths"):
            _artifacts(init, context, spot)
        elif handler == "file":
            assert init.file is not None
            directory = _path(init, context, "files")
            _write(directory / (init.file.filename or "file"), init.file.content, init.file.chmod)
        elif handler == "dockerfile":
            assert init.dockerfile is not None
            directory = _path(init, context, "build")
            text = _dockerfile_text(init.dockerfile)
            _write(directory / (init.dockerfile.filename or "Dockerfile"), text, None)
        elif handler is None:
            if init.container is not None:
                note(f"{spot}: an init container runs on Kubernetes only (not run locally)")
        else:
            raise LaunchError(
                f"{spot}.{handler}: polytrack run --local cannot fetch {handler} inits "
                "(they need Polyaxon's stores); fetch them in the process"
            )
    return workdir or context


def _param_inits(operation: spec.Operation, note: Callable[[str], None]) -> list[spec.Init]:
    """Inputs with `toInit`: a `git` or `artifacts` value becomes an init step."""
    component = operation.component
    assert component is not None
    inits = []
    for name, param in operation.params.items():
        if not param.to_init or param.value is None:
            continue
        io = component.io(name)
        kind = io.type if io is not None else None
        value = param.value
        if kind == "git":
            flags = tuple(value.get("flags") or ()) or None
            found = spec.GitInit(url=value.get("url"), revision=value.get("revision"), flags=flags)
            inits.append(spec.Init(git=found, connection=param.connection))
        elif kind == "artifacts":
            files = tuple(value.get("files") or ()) or None
            dirs = tuple(value.get("dirs") or ()) or None
            artifacts = spec.ArtifactsInit(files=files, dirs=dirs)
            inits.append(spec.Init(artifacts=artifacts, connection=param.connection))
        else:
            note(f"params.{name}: toInit is done for git and artifacts only")
    return inits


def _path(init: spec.Init, context: Path, default: str) -> Path:
    """Where an init writes: its `path` under the context (never outside it)."""
    if init.path is None:
        return context / default
    relative = init.path.removeprefix("/polytrack").lstrip("/")
    target = (context / relative).resolve()
    if not target.is_relative_to(context.resolve()):
        raise LaunchError(f"init path {init.path!r} leads out of the run's context directory")
    return target


def _write(dest: Path, content: str, chmod: str | None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(content, encoding="utf-8")
    if chmod:
        try:
            dest.chmod(int(chmod, 8))
        except ValueError as exc:
            raise LaunchError(f"chmod {chmod!r} is not an octal mode") from exc


def _git(
    init: spec.Init,
    git_init: spec.GitInit,
    context: Path,
    source: GitSource | None,
    tree: Path | None,
    env: Mapping[str, str],
    spot: str,
) -> Path:
    if init.connection is not None and git_init.url is None:
        raise LaunchError(
            f"{spot}.git: the url of connection {init.connection!r} is not known here; give the url"
        )
    url = git_init.url
    assert url is not None
    repo = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    dest = _path(init, context, f"code/{repo or 'repo'}")
    if dest.exists() and any(dest.iterdir()):
        return dest  # a retry of the same run: checked out already
    own = (
        git_init.revision is None
        and source is not None
        and (_same_repo(url, source.remote) or (tree is not None and _same_path(url, tree)))
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if own:
        assert source is not None
        origin = str(tree) if tree is not None else url
        _run_git(["clone", "--quiet", "--no-checkout", "--", origin, str(dest)], context, env)
        checkout = ["-c", "advice.detachedHead=false", "checkout", "--quiet", source.commit]
        _run_git(checkout, dest, env)
        if source.diff:
            patch = context / ".polytrack-git-diff.patch"
            patch.write_bytes(source.diff)
            _run_git(["apply", "--whitespace=nowarn", str(patch)], dest, env)
        return dest
    flags = list(git_init.flags or ())
    _run_git(["clone", "--quiet", *flags, "--", url, str(dest)], context, env)
    if git_init.revision is not None:
        checkout = ["-c", "advice.detachedHead=false", "checkout", "--quiet", git_init.revision]
        _run_git(checkout, dest, env)
    return dest


def _same_path(url: str, tree: Path) -> bool:
    candidate = Path(url.removeprefix("file://")).expanduser()
    try:
        return candidate.resolve() == tree.resolve()
    except OSError:
        return False


def _run_git(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
    executable = shutil.which("git", path=env.get("PATH", os.defpath))
    if executable is None:
        raise LaunchError("git is not installed: the operation's git init needs it")
    done = subprocess.run(
        [executable, *args],
        cwd=cwd,
        env={**env, "GIT_TERMINAL_PROMPT": "0"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = "; ".join(lines[:3]) or f"exit status {done.returncode}"
        raise LaunchError(f"git {args[0]} failed: {detail}")


def _artifacts(init: spec.Init, context: Path, spot: str) -> None:
    if init.connection is not None:
        raise LaunchError(
            f"{spot}: connection {init.connection!r} is a Kubernetes Secret, not here; "
            "locally give local paths or fsspec URLs without a connection"
        )
    base = _path(init, context, "artifacts")
    items: list[tuple[Any, bool]] = []
    if init.artifacts is not None:
        items += [(item, False) for item in init.artifacts.files or ()]
        items += [(item, True) for item in init.artifacts.dirs or ()]
    items += [(item, True) for item in init.paths or ()]
    for item, _ in items:
        source, dest = (item[0], item[1]) if isinstance(item, list | tuple) else (item, item)
        source = str(source)
        name = str(dest).split("://", 1)[-1].lstrip("/")
        target = (base / name).resolve()
        if not target.is_relative_to(base.resolve()):
            raise LaunchError(f"{spot}: {dest!r} leads out of the run's context directory")
        _copy(source, target, spot)


def _copy(source: str, target: Path, spot: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if "://" in source and not source.startswith("file://"):
        try:
            core: Any = importlib.import_module("fsspec.core")  # untyped: an optional extra
        except ImportError as exc:
            raise LaunchError(
                f"{spot}: copying {source} needs fsspec (pip install 'polytrack[s3]')"
            ) from exc
        fs, path = core.url_to_fs(source)
        if not fs.exists(path):
            raise LaunchError(f"{spot}: {source} does not exist")
        fs.get(path, str(target), recursive=fs.isdir(path))
        return
    path = Path(source.removeprefix("file://")).expanduser()
    if path.is_dir():
        shutil.copytree(path, target, dirs_exist_ok=True)
    elif path.is_file():
        shutil.copy2(path, target)
    else:
        raise LaunchError(f"{spot}: {source} does not exist on this machine")
