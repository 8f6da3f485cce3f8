"""The `init` section: what to fetch or write before the main container starts.

Each entry uses one handler (git, artifacts, paths, dockerfile, file, tensorboard or a
lineage/model/artifact reference), optionally with a `connection` to fetch from, a `path`
to put it under and a `container` to customise the init container. The handler types are
also the types of `git`, `artifacts`, `dockerfile` and `file` inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from polytrack._convert import FieldError
from polytrack.spec._fields import NonNegativeInt
from polytrack.spec.k8s import Container

__all__ = ["ArtifactsInit", "DockerfileInit", "FileInit", "GitInit", "Init", "TensorboardInit"]

_HANDLERS = (
    "artifacts",
    "paths",
    "git",
    "dockerfile",
    "file",
    "tensorboard",
    "lineage_ref",
    "model_ref",
    "artifact_ref",
)


@frozen
class GitInit:
    """A git repository to clone: `url` (else the connection's), `revision`, clone `flags`."""

    url: str | None = None
    revision: str | None = None
    flags: tuple[str, ...] | None = None


@frozen
class ArtifactsInit:
    """Files and directories to download; an item is a path or a [from, to] pair."""

    files: tuple[Any, ...] | None = None
    dirs: tuple[Any, ...] | None = None
    workers: NonNegativeInt | None = None


@frozen
class DockerfileInit:
    """A Dockerfile to generate: base `image`, `env`, `run` steps, files to `copy`, ..."""

    image: str
    env: Mapping[str, Any] | None = None
    path: tuple[str, ...] | None = None
    copy: tuple[Any, ...] | None = None
    post_run_copy: tuple[Any, ...] | None = None
    run: tuple[str, ...] | None = None
    lang_env: str | None = None
    uid: int | None = None
    gid: int | None = None
    username: str | None = None
    filename: str | None = None
    workdir: str | None = None
    workdir_path: str | None = None
    shell: str | None = None


@frozen
class FileInit:
    """A file to write from `content`, with an optional `filename` and `chmod` mode."""

    content: str
    filename: str | None = None
    chmod: str | None = None
    kind: str | None = None


@frozen
class TensorboardInit:
    """Tensorboard logs of other runs to gather (`uuids`), served on `port`."""

    port: int | None = None
    uuids: tuple[str, ...] | None = None
    use_names: bool | None = None
    path: str | None = None
    plugins: tuple[str, ...] | None = None


@frozen
class Init:
    """One init entry: at most one handler, plus where it comes from and goes to."""

    artifacts: ArtifactsInit | None = None
    paths: tuple[Any, ...] | None = None
    git: GitInit | None = None
    dockerfile: DockerfileInit | None = None
    file: FileInit | None = None
    tensorboard: TensorboardInit | None = None
    lineage_ref: str | None = None
    model_ref: str | None = None
    artifact_ref: str | None = None
    connection: str | None = None
    path: str | None = None
    container: Container | None = None

    def __attrs_post_init__(self) -> None:
        used = [name for name in _HANDLERS if getattr(self, name) is not None]
        if len(used) > 1:
            keys = " and ".join(_camel(name) for name in used)
            raise FieldError(f"set only one handler per init entry, got {keys}")
        if self.git is not None and self.git.url is None and self.connection is None:
            raise FieldError(
                "a git init without a url needs a connection to clone from", subpath=("git",)
            )

    @property
    def handler(self) -> str | None:
        """The handler this entry uses (`git`, `dockerfile`, ...), None for a bare container."""
        return next((_camel(name) for name in _HANDLERS if getattr(self, name) is not None), None)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
