"""The registry of submitted operations: one JSON file per workload under `<home>/ops/`.

    <home>/ops/<run id>.json     what `polytrack ops` needs to find the workload again

A record names the cluster by its server, kubeconfig file and context (never a
credential), the objects created, the pods' selector and the run it belongs to, plus the
last state seen. Files are replaced atomically; a record that cannot be read is
reported and skipped, never fatal for the others.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

import attrs
from attrs import frozen

from polytrack._convert import converter
from polytrack.errors import AmbiguousRunError, RunNotFoundError, StoreError

__all__ = ["ObjectRef", "OpRecord", "OpsRegistry"]

_SUFFIX: Final = ".json"


@frozen
class ObjectRef:
    """One object created for a workload."""

    api_version: str
    kind: str
    name: str


@frozen
class OpRecord:
    """One submitted workload: where it runs, what it is made of, and its run.

    `id` is the run's id. `group` ties the workloads of one matrix or DAG together
    (`group_kind` says which; `key` is the matrix index or the DAG operation). `status` is
    the last state seen, `recorded` whether that final status went into the run.
    """

    id: str
    run_name: str
    project: str
    kind: str
    namespace: str
    name: str
    objects: tuple[ObjectRef, ...]
    main_container: str
    pod_selector: str
    server: str
    context: str | None
    kubeconfig: str | None
    submitted_at: float
    group: str | None = None
    group_kind: str | None = None
    key: str | None = None
    status: str = "created"
    message: str | None = None
    finished_at: float | None = None
    recorded: bool = False

    @property
    def main(self) -> ObjectRef:
        """The workload object whose state is the run's (not a ConfigMap or Service)."""
        for ref in self.objects:
            if ref.kind not in ("ConfigMap", "Service"):
                return ref
        return self.objects[-1]

    def evolve(self, **changes: Any) -> OpRecord:
        return attrs.evolve(self, **changes)


class OpsRegistry:
    """The records under one directory (`<home>/ops`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.problems: list[str] = []  # records that could not be read, by the last `all()`

    @classmethod
    def at(cls, home: Path) -> OpsRegistry:
        """The registry of the store at `home` (created on the first `save`)."""
        return cls(home / "ops")

    def save(self, record: OpRecord) -> None:
        """Write `record`, replacing any earlier one of the same id atomically.

        Raises:
            StoreError: the directory or file cannot be written.
        """
        data = json.dumps(converter.unstructure(record), indent=1, sort_keys=True)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".op-", dir=self.directory)
            with os.fdopen(fd, "w") as file:
                file.write(data)
            os.replace(temporary, self.directory / f"{record.id}{_SUFFIX}")
        except OSError as exc:
            raise StoreError(f"cannot record the operation in {self.directory}: {exc}") from exc

    def all(self) -> list[OpRecord]:
        """Every readable record, newest submission first; unreadable ones in `problems`."""
        self.problems = []
        records = []
        try:
            paths = sorted(self.directory.glob(f"*{_SUFFIX}"))
        except OSError:
            paths = []
        for path in paths:
            try:
                records.append(self._read(path))
            except StoreError as exc:
                self.problems.append(str(exc))
        return sorted(records, key=lambda record: -record.submitted_at)

    def get(self, ref: str) -> OpRecord:
        """The record of a run id, a unique prefix of one, or a workload name.

        Raises:
            RunNotFoundError: none matches. AmbiguousRunError: several do.
        """
        records = self.all()
        for match in (
            [r for r in records if r.id == ref],
            [r for r in records if r.name == ref],
            [r for r in records if r.id.startswith(ref)] if ref else [],
        ):
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                names = ", ".join(r.id for r in match[:5])
                raise AmbiguousRunError(f"{ref!r} matches {len(match)} operations ({names})")
        raise RunNotFoundError(f"no submitted operation has the run id, prefix or name {ref!r}")

    def group(self, group: str) -> list[OpRecord]:
        """The records of one matrix or DAG."""
        return [record for record in self.all() if record.group == group]

    def _read(self, path: Path) -> OpRecord:
        try:
            data = json.loads(path.read_text())
            record: OpRecord = converter.structure(data, OpRecord)
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the operation record {path}: {exc}") from exc
        except Exception as exc:  # cattrs' validation errors: a record from another version
            raise StoreError(f"the operation record {path} is malformed: {exc}") from exc
        return record
