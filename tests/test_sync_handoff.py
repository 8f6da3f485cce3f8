"""What a run leaves behind when its server cannot take it all by `finish()`: a quick exit,
one background uploader per home (bounded, shown by `sync --status`, stopped by
`sync --stop`), and `polytrack sync` choosing runs with care (`--project`, `--where`,
`--dry-run`, a question before it creates many runs on a server)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import polytrack
from polytrack.cli import main
from polytrack.errors import BackendUnavailableError
from polytrack.models import RunStarted
from polytrack.sync import uploader
from polytrack.sync.backends.memory import InMemoryBackend
from polytrack.sync.worker import GRACE, no_connection

QUIET = {"capture": False}


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening (so no other
    process can take it while the test runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel completes them) and never
    answers a request."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def _uploader_pids(home: Path) -> list[int]:
    """The processes running `polytrack ... --home HOME sync --uploader`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--uploader" in argv and str(home).encode() in argv and b"-c" not in argv:
            found.append(int(cmdline.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (reparented to a PID 1 that never reaps) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """The store of a test, whose background uploaders are killed at teardown, whatever
    the test did: none outlives it."""
    path = tmp_path / "home"
    try:
        yield path
    finally:
        for pid in _uploader_pids(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in _uploader_pids(path)):
            assert time.monotonic() < deadline, "an uploader survived SIGKILL"
            time.sleep(0.05)


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import polytrack

            run = polytrack.init(project=sys.argv[1], capture=False)
            for step in range(200):
                run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            print(run.id, flush=True)
            """
        )
    )
    return script


def _train(
    script: Path, home: Path, backend: str, *, project: str = "p", **env: str
) -> tuple[str, str, float]:
    """Run the script to its end; its run id, its stderr, and how long it took."""
    environ = {**os.environ, "POLYTRACK_HOME": str(home), "POLYTRACK_BACKEND": backend, **env}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), project],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr, elapsed


def _cli(*argv: str, home: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--home", str(home), *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _offline_runs(home: Path, count: int, *, project: str = "p", **params: Any) -> list[str]:
    ids = []
    for index in range(count):
        run = polytrack.init(
            dir=home, project=project, mode="offline", params={**params, "i": index}, **QUIET
        )
        run.log_metrics({"loss": 0.5}, step=0)
        run.finish()
        ids.append(run.id)
    return ids


# -- finish() and the uploader ---------------------------------------------------------------


def test_a_closed_port_costs_seconds_and_leaves_one_uploader_per_home(
    home: Path, tmp_path: Path, closed_port: int
) -> None:
    """Three scripts in a row against a port that refuses: each exits in seconds (not the
    old 30), and together they leave one uploader, which `--status` shows with their three
    runs and `--stop` ends."""
    script = _script(tmp_path)
    backend = f"mlflow+http://127.0.0.1:{closed_port}"
    ids, pids = [], set()
    for _ in range(3):
        run_id, err, elapsed = _train(script, home, backend)
        assert elapsed < 15, (elapsed, err)  # was 30 s; margin for a busy machine
        [line] = [line for line in err.splitlines() if "not all at" in line]
        assert run_id in line and "background uploader (pid " in line, line
        pids.add(int(line.split("(pid ", 1)[1].split(")", 1)[0]))
        ids.append(run_id)
    [pid] = pids  # every run was handed to the first run's uploader
    assert _uploader_pids(home) == [pid]
    # The URI (credentials and all) goes by environment, never on a command line.
    assert backend.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

    code, out, _ = _cli("sync", "--status", "--json", home=home)
    status = json.loads(out)
    assert code == 0 and status["uploader"]["pid"] == pid
    assert status["uploader"]["backend"] == backend
    assert sorted(row["run"] for row in status["pending"]) == sorted(ids)
    assert all(row["points"] == 200 and row["new"] for row in status["pending"])
    code, out, _ = _cli("sync", "--status", home=home)
    assert f"pid {pid}" in out and "pending: 3 runs, 600 points" in out
    assert all(run_id in out for run_id in ids)

    code, _, err = _cli("sync", "--stop", home=home)
    assert code == 0 and f"stopped the uploader (pid {pid})" in err
    assert not _alive(pid)
    status = json.loads(_cli("sync", "--status", "--json", home=home)[1])
    assert status["uploader"] is None and len(status["pending"]) == 3  # nothing lost
    log = (home / ".sync" / "uploader.log").read_text()
    assert "stopped (SIGTERM); 3 runs left" in log
    assert _cli("sync", "--stop", home=home)[2].strip() == "no uploader is running"


def test_a_server_that_does_not_answer_costs_seconds_at_exit(
    home: Path, tmp_path: Path, silent_port: int
) -> None:
    """A server that takes the connection and never answers: the script exits after the
    sync timeout, not after its request's timeout."""
    run_id, err, elapsed = _train(_script(tmp_path), home, f"mlflow+http://127.0.0.1:{silent_port}")
    # The sync timeout (5 s), the grace (1 s) and the interpreter: well short of the 60 s
    # that the request itself would wait.
    assert elapsed < 25, (elapsed, err)
    assert f"run {run_id} is not all at" in err


class RefusingBackend(InMemoryBackend):
    """A server whose port refuses connections, as an HTTP backend reports it."""

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise BackendUnavailableError("refusing://test is unreachable") from exc


def test_finish_does_not_wait_on_a_refused_connection(
    home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """However long the sync timeout, finish() gives up as soon as a try after the
    journal closed finds no server, and says what is left."""
    monkeypatch.setenv("POLYTRACK_SYNC_TIMEOUT", "60")
    run = polytrack.init(dir=home, backend=RefusingBackend("refusing"), **QUIET)
    run.log_metric("x", 1.0, step=0)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < GRACE + 14  # not the 60 s; margin for a busy CI
    assert f"run {run.id} is not all at memory://refusing" in capfd.readouterr().err


def test_only_a_connection_never_made_counts_as_no_server() -> None:
    """Refused, unknown host, connect timeout: no server. A reset, a 503: an answer."""
    import requests

    def chained(cause: BaseException) -> BackendUnavailableError:
        try:
            raise cause
        except BaseException as exc:
            try:
                raise BackendUnavailableError("unavailable") from exc
            except BackendUnavailableError as outer:
                return outer

    assert no_connection(chained(ConnectionRefusedError(111, "Connection refused")))
    assert no_connection(chained(socket.gaierror(-2, "Name or service not known")))
    assert no_connection(chained(requests.ConnectionError(ConnectionRefusedError())))
    assert not no_connection(chained(ConnectionResetError(104, "Connection reset by peer")))
    assert not no_connection(BackendUnavailableError("503 from the server", status=503))


def test_finish_hands_the_rest_to_an_uploader_that_sends_it_and_exits(
    home: Path, tmp_path: Path
) -> None:
    """Past the sync timeout, the background uploader sends the run whole, forgets it,
    and exits by itself once nothing is left."""
    target = tmp_path / "team-home"
    backend = f"polytrack+file://{target}"
    run_id, err, _ = _train(_script(tmp_path), home, backend, POLYTRACK_SYNC_TIMEOUT="0")
    assert "background uploader (pid " in err, err
    pid = int(err.split("(pid ", 1)[1].split(")", 1)[0])
    _wait_for(lambda: not _alive(pid), "the uploader to exit")
    log = (home / ".sync" / "uploader.log").read_text()
    assert "nothing left to send" in log, log
    assert uploader.pending_runs(home) == []
    sent = polytrack.get_run(run_id, home=target)
    assert sent.status == "succeeded" and sent.metrics["loss"].count == 200
    assert uploader.running_uploader(home) is None


def test_the_uploader_sends_every_pending_run_of_its_backend(home: Path, tmp_path: Path) -> None:
    """`sync --uploader` sends the runs handed to its backend, leaves the others alone,
    and exits 0 when none of its own is left."""
    target = tmp_path / "team-home"
    key = f"polytrack+file://{target}"
    mine = _offline_runs(home, 2)
    other = _offline_runs(home, 1)
    for run_id in mine:
        uploader.hand_off(home, run_id, key)
    uploader.hand_off(home, other[0], "mlflow+http://elsewhere:5000")
    code, _, err = _cli("sync", "--uploader", "--backend", key, home=home)
    assert code == 0, err
    assert "nothing left to send" in err
    assert sorted(info.id for info in polytrack.runs(home=target)) == sorted(mine)
    assert [pending.run_id for pending in uploader.pending_runs(home)] == other
    assert uploader.running_uploader(home) is None


def test_the_uploader_gives_up_after_its_bound(home: Path, closed_port: int) -> None:
    """Against a server that stays down, the uploader exits after --retry-for seconds,
    says what is left, and keeps it pending."""
    key = f"mlflow+http://127.0.0.1:{closed_port}"
    [run_id] = _offline_runs(home, 1)
    uploader.hand_off(home, run_id, key)
    started = time.monotonic()
    code, _, err = _cli("sync", "--uploader", "--retry-for", "1", "--backend", key, home=home)
    assert code == 1 and time.monotonic() - started < 1 + 19, err  # not the default hour
    assert "gave up after 1s: 1 runs left" in err
    assert [pending.run_id for pending in uploader.pending_runs(home)] == [run_id]


def test_a_second_uploader_leaves_at_once(home: Path, tmp_path: Path) -> None:
    """While one uploader holds the home's lock, another one exits without sending."""
    key = f"polytrack+file://{tmp_path / 'team-home'}"
    [run_id] = _offline_runs(home, 1)
    uploader.hand_off(home, run_id, key)
    lock = uploader.UploaderLock.acquire(home, backend=key, until=None)
    assert lock is not None
    try:
        assert uploader.claim(home) is None  # and no finish() would start one either
        code, _, err = _cli("sync", "--uploader", "--backend", key, home=home)
        assert code == 0 and f"an uploader runs already (pid {os.getpid()})" in err
        assert len(uploader.pending_runs(home)) == 1
    finally:
        lock.release()
    assert uploader.running_uploader(home) is None


def test_status_survives_damaged_bookkeeping(home: Path) -> None:
    """Garbage in the uploader's files is skipped: `--status` still answers."""
    [run_id] = _offline_runs(home, 1)
    uploader.hand_off(home, run_id, "mlflow+http://h:1")
    pending = home / ".sync" / "pending"
    (pending / "junk.json").write_bytes(b"\xff\x00{not json")
    (pending / "list.json").write_text("[1, 2]")
    (home / ".sync" / "uploader.json").write_bytes(b"\x00garbage")
    code, out, err = _cli("sync", "--status", "--json", home=home)
    assert code == 0, err
    status = json.loads(out)
    assert status["uploader"] is None
    assert [row["run"] for row in status["pending"]] == [run_id]


# -- choosing what `polytrack sync` sends ------------------------------------------------------


def test_sync_chooses_by_project_and_where_and_dry_run_sends_nothing(
    home: Path, tmp_path: Path
) -> None:
    """--project and --where choose the runs; --dry-run lists them with their points and
    bytes, connects nowhere and sends nothing."""
    target = tmp_path / "team-home"
    key = f"polytrack+file://{target}"
    low = _offline_runs(home, 2, project="mnist", lr=0.01)
    high = _offline_runs(home, 1, project="mnist", lr=0.5)
    others = _offline_runs(home, 3, project="unrelated")

    code, out, err = _cli("sync", "--project", "mnist", "--dry-run", "--backend", key, home=home)
    assert code == 0, err
    assert all(run_id in out for run_id in low + high)
    assert not any(run_id in out for run_id in others)
    assert f"would send 3 runs to {key} (3 new there): 3 points" in err
    assert not target.exists()  # nothing sent, not even a directory made

    code, out, err = _cli(
        "sync", "--project", "mnist", "--where", "params.lr < 0.1", "--backend", key, home=home
    )
    assert code == 0, err
    assert sorted(info.id for info in polytrack.runs(home=target)) == sorted(low)

    code, out, err = _cli("sync", "--all", "--dry-run", "--backend", key, home=home)
    assert code == 0 and not any(run_id in out for run_id in low)  # up to date: not listed
    assert f"would send 4 runs to {key} (4 new there)" in err


def test_bad_choices_are_refused_with_a_reason(home: Path) -> None:
    """Runs and filters together, an unparsable --where, or --json without --status."""
    _offline_runs(home, 1)
    key = f"polytrack+file://{home.parent / 'team-home'}"
    code, _, err = _cli("sync", "some-run", "--all", "--backend", key, home=home)
    assert code == 1 and "not both" in err
    code, _, err = _cli("sync", "--where", "params.lr <", "--backend", key, home=home)
    assert code == 2 and "expected a value after '<'" in err
    code, _, err = _cli("sync", "--all", "--json", "--backend", key, home=home)
    assert code == 1 and "--json goes with --status" in err
    code, _, err = _cli("sync", "--uploader", "--all", "--backend", key, home=home)
    assert code == 1 and "--uploader" in err


def test_creating_many_runs_on_a_server_needs_yes(home: Path, tmp_path: Path) -> None:
    """Without a terminal, more than 5 new runs are refused (nothing sent) unless --yes;
    5 go without a question, and so do runs named one by one."""
    target = tmp_path / "team-home"
    key = f"polytrack+file://{target}"
    ids = _offline_runs(home, 7, project="a") + _offline_runs(home, 1, project="b")

    code, _, err = _cli("sync", "--all", "--backend", key, home=home)
    assert code == 1 and "would create 8 runs" in err and "--yes" in err, err
    assert "projects: a, b" in err
    assert not target.exists()

    code, _, err = _cli("sync", *ids[:6], "--backend", key, home=home)
    assert code == 0, err  # named: no question
    code, _, err = _cli("sync", "--all", "--backend", key, home=home)
    assert code == 0, err  # two new ones left: no question
    assert len(polytrack.runs(home=target)) == 8

    more = _offline_runs(home, 6, project="c")
    code, _, err = _cli("sync", "--project", "c", "--backend", key, home=home)
    assert code == 1 and "would create 6 runs" in err
    code, _, err = _cli("sync", "--project", "c", "--yes", "--backend", key, home=home)
    assert code == 0, err
    assert {info.id for info in polytrack.runs(home=target, project="c")} == set(more)


def _answer_on_a_terminal(home: Path, key: str, answer: str) -> subprocess.CompletedProcess[str]:
    """`polytrack sync --all` with a terminal for stdin, answering its question."""
    import pty

    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")  # waits in the terminal's buffer
        return subprocess.run(
            [sys.executable, "-m", "polytrack", "--home", str(home), "sync", "--all"],
            env={**os.environ, "POLYTRACK_BACKEND": key},
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(controller)
        os.close(terminal)


def test_a_person_at_a_terminal_is_asked_first(home: Path, tmp_path: Path) -> None:
    """On a terminal, the question is asked: "n" sends nothing, "y" sends them all."""
    target = tmp_path / "team-home"
    key = f"polytrack+file://{target}"
    _offline_runs(home, 6)
    refused = _answer_on_a_terminal(home, key, "n")
    assert refused.returncode == 1, refused.stderr
    assert "would create 6 runs" in refused.stderr and "Send them? [y/N]" in refused.stderr
    assert "not confirmed: nothing was sent" in refused.stderr
    assert not target.exists()
    agreed = _answer_on_a_terminal(home, key, "y")
    assert agreed.returncode == 0, agreed.stderr
    assert len(polytrack.runs(home=target)) == 6
