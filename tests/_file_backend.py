"""A real backend that keeps what it receives in a JSON-lines file: a "server" that
outlives the processes writing to it, for crash tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from polytrack.models import RunStarted
from polytrack.sync.backends.base import Artifact, Batch


class FileBackend:
    """Appends each applied batch to `path`; drops a batch whose seq it has applied."""

    def __init__(self, path: Path, *, die_on_seq: int | None = None) -> None:
        self.path = path
        self.die_on_seq = die_on_seq

    @property
    def key(self) -> str:
        return "file-backend://test"

    def _applied(self) -> set[tuple[str, int]]:
        if not self.path.exists():
            return set()
        lines = self.path.read_text().splitlines()
        return {(r["run"], r["seq"]) for r in map(json.loads, lines) if r["kind"] == "batch"}

    def _append(self, record: dict[str, object]) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        self._append({"kind": "open", "run": run.id})

    def write(self, run_id: str, batch: Batch) -> None:
        if (run_id, batch.seq) not in self._applied():
            points = [[key, step, value] for key, step, value, _ in batch.iter_points()]
            self._append({"kind": "batch", "run": run_id, "seq": batch.seq, "points": points})
        if batch.seq == self.die_on_seq:
            os.kill(os.getpid(), 9)  # applied, never confirmed: the worst moment to die

    def set_status(self, run_id: str, status: str, *, at: float, message: str | None = None):
        self._append({"kind": "status", "run": run_id, "status": status})

    def upload_artifact(self, run_id: str, artifact: Artifact) -> None:
        self._append({"kind": "artifact", "run": run_id, "name": artifact.name})

    def close(self) -> None:
        pass

    def points(self, run_id: str, key: str) -> list[tuple[int, float]]:
        found = []
        for record in map(json.loads, self.path.read_text().splitlines()):
            if record["kind"] == "batch" and record["run"] == run_id:
                found += [(step, value) for k, step, value in record["points"] if k == key]
        return found

    def statuses(self, run_id: str) -> list[str]:
        lines = map(json.loads, self.path.read_text().splitlines())
        return [r["status"] for r in lines if r["kind"] == "status" and r["run"] == run_id]
