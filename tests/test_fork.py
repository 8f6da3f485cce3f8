"""Forks and children around a run: a child forked at any instant after `init()` can start
its own run, and children that outlive the run (subprocesses, fork-pool workers) go on
writing to the real terminal unharmed. Each scenario runs as a script in a subprocess,
whose real stdout the test reads: pytest's own streams are no terminal to redirect."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import polytrack
from _git import git
from _terminal import run_on_terminals
from polytrack.store.local import LocalStore

# Rounds of (one run in the parent, forks at seeded random instants in its first 0.5 s).
# Most instants fall in the first 30 ms, one in each of six slices, where the capture
# threads import (psutil, the capture modules): a fork there used to leave the child an
# import lock held forever, and its init() waited on it (issue 12, section 4).
_STORM = textwrap.dedent(
    r"""
    import faulthandler, os, random, sys, time
    import polytrack

    home, seed, rounds, forks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    for round_ in range(rounds):
        early = [(i + rng.random()) * 0.030 / (forks - 2) for i in range(forks - 2)]
        instants = early + sorted(rng.uniform(0.030, 0.5) for _ in range(2))
        # A cold cache each round: the environment capture then reads the package list,
        # importing what importlib.metadata imports on first use.
        os.environ["POLYTRACK_CACHE_DIR"] = os.path.join(home, f"cache-{round_}")
        run = polytrack.init(project="storm", dir=home)
        started = time.monotonic()
        children = []
        for at in instants:
            pause = started + at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pid = os.fork()
            if pid == 0:
                code = 1
                # A child that hangs shows where, every thread of it, before the parent
                # gives up on it (30 s): the test's failure then says which lock it was.
                faulthandler.dump_traceback_later(25, exit=True)
                try:
                    child = polytrack.init(project="storm-child", dir=home)
                    child.log_metrics({"x": float(round_)}, step=0)
                    child.finish()
                    code = 0
                finally:
                    os._exit(code)
            children.append((pid, at))
        failure = None
        for pid, at in children:
            deadline = time.monotonic() + 30
            while failure is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    if status != 0:
                        failure = f"ended with status {status}"
                    break
                if time.monotonic() > deadline:
                    failure = "hung"
                time.sleep(0.005)
            if failure is not None:
                for other, _ in children:  # none may hold the test's pipes open
                    try:
                        os.kill(other, 9)
                    except ProcessLookupError:
                        pass
                sys.exit(f"round {round_}: the child forked {at * 1000:.1f} ms after init "
                         f"{failure}")
        run.finish()
    """
)


@pytest.mark.parametrize(
    ("seed", "backend"), [(12, False), (34, True)], ids=["no-backend", "file-backend"]
)
def test_a_fork_storm_after_init_never_hangs_a_child(
    tmp_path: Path, hot_path: str, seed: int, backend: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Children forked at random instants after init() all start, record and finish a run
    of their own: no lock a capture thread held at the fork is inherited held. With a
    backend, the sync worker's imports (the engine, numpy) are among them, and each
    child's run reaches the backend from its own sync worker."""
    remote = tmp_path / "remote"
    if backend:
        monkeypatch.setenv("POLYTRACK_BACKEND", f"polytrack+file://{remote}")
        # A child whose sync worker hung on an inherited import lock would leave its run
        # to the background uploader after the timeout: no uploader, and a long timeout,
        # so that such a child fails the test (it hangs, or its run is missing below).
        monkeypatch.setenv("POLYTRACK_SYNC_HANDOFF", "0")
        monkeypatch.setenv("POLYTRACK_SYNC_TIMEOUT", "120")
    repo = tmp_path / "repo"  # git in the snapshot: its thread runs git and imports for it
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('hi')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    script = tmp_path / "storm.py"
    script.write_text(_STORM)
    home = tmp_path / "home"
    rounds, forks = 3, 8
    done = subprocess.run(
        [sys.executable, str(script), str(home), str(seed), str(rounds), str(forks)],
        cwd=repo,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-8000:]
    children = polytrack.runs(project="storm-child", home=home)
    assert len(children) == rounds * forks
    assert {view.status for view in children} == {"succeeded"}
    assert sorted(view.history("x")[1].tolist()[0] for view in children) == sorted(
        float(round_) for round_ in range(rounds) for _ in range(forks)
    )
    if backend:
        assert b"is not all at" not in done.stderr, done.stderr.decode(errors="replace")
        synced = polytrack.runs(project="storm-child", home=remote)
        assert {view.id for view in synced} == {view.id for view in children}
        assert {view.status for view in synced} == {"succeeded"}


# -- children that outlive the run ------------------------------------------------------------

# Started during the run, they write only once the run has finished: a Python child and a
# shell helper (each released by the end of its stdin), and a fork-pool worker that writes
# more than a pipe holds. Each must reach the real stdout, and none may die or block.
_CHILDREN = textwrap.dedent(
    r"""
    import multiprocessing, subprocess, sys
    import polytrack

    LINES = 300  # 300 lines of 1 KiB: past the 64 KiB a pipe holds

    def write_much(tag):
        for i in range(LINES):
            sys.stdout.write(f"{tag} {i:04d} " + "x" * 1013 + "\n")
        sys.stdout.flush()
        return LINES

    if __name__ == "__main__":
        run = polytrack.init(project="children", dir=sys.argv[1])
        # The pool first: a worker forked later would hold the children's stdin open.
        pool = multiprocessing.get_context("fork").Pool(1)
        assert pool.apply(len, ("warm",)) == 4  # its worker is forked during the run
        waits = "import sys; sys.stdin.read(); print('python child after finish', flush=True)"
        python_child = subprocess.Popen([sys.executable, "-c", waits], stdin=subprocess.PIPE)
        shell = subprocess.Popen(
            ["sh", "-c", "read line; echo shell helper after finish"], stdin=subprocess.PIPE
        )
        print("during the run", flush=True)
        run.finish()
        python_child.stdin.close()  # one after the other: their lines must not interleave
        codes = [python_child.wait(timeout=30)]
        shell.stdin.close()
        codes.append(shell.wait(timeout=30))
        written = pool.apply_async(write_much, ("pool",)).get(timeout=30)
        pool.close()
        pool.join()
        # On stderr: on stdout it could land amid what the reader still forwards.
        print("exit codes", *codes, "pool wrote", written, file=sys.stderr, flush=True)
    """
)


def _run_children(tmp_path: Path, *, tty: bool) -> tuple[bytes, bytes]:
    """Run the script; its real stdout and stderr (pipes, or each a pseudo-terminal)."""
    script = tmp_path / "children.py"
    script.write_text(_CHILDREN)
    argv = [sys.executable, str(script), str(tmp_path / "home")]
    if not tty:
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout, done.stderr
    returncode, out, err = run_on_terminals(argv)
    assert returncode == 0, err.decode(errors="replace")
    return out, err


@pytest.mark.slow
@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "terminal"])
def test_children_writing_after_finish_reach_the_real_stdout(tmp_path: Path, tty: bool) -> None:
    """A subprocess, a shell helper and a fork-pool worker started during the run write after
    finish(): none dies of a broken pipe nor blocks, and all of it reaches the real stdout."""
    out, err = _run_children(tmp_path, tty=tty)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert "python child after finish\n" in text
    assert "shell helper after finish\n" in text
    pool_lines = [line for line in text.splitlines() if line.startswith("pool ")]
    assert pool_lines == [f"pool {i:04d} " + "x" * 1013 for i in range(300)]
    assert "exit codes 0 0 pool wrote 300\n" in err.decode().replace("\r\n", "\n")
    assert b"BrokenPipeError" not in err
    (view,) = polytrack.runs(project="children", home=tmp_path / "home")
    assert view.status == "succeeded"
    logged = [line.text for line in view.logs()]
    assert "during the run" in logged  # the capture itself still works


def test_a_forked_child_is_told_its_calls_are_not_recorded(tmp_path: Path) -> None:
    """In a forked child, log calls warn once that it is a fork of the run's process,
    that nothing it logs is recorded, and where the docs show how to log from workers."""
    run = polytrack.init(dir=tmp_path / "home")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the warnings' texts, whatever happens
        try:
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                polytrack.log_metrics({"loss": 1.0}, step=0)
                run.log_metrics({"loss": 1.0}, step=0)
            os.write(write, "\n".join(str(w.message) for w in caught).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        messages = pipe.read().decode().splitlines()
    os.waitpid(pid, 0)
    run.finish()
    assert len(messages) == 2, messages
    for message in messages:
        assert f"forked from run {run.id}" in message
        assert "records nothing" in message
        assert "'Logging from workers' in docs/tracking.md" in message
    assert "before polytrack.init()" not in messages[0]


# Every import made by a polytrack thread: whether it held the fork gate meanwhile, the
# thread ("snapshot", "sync", "logs", ...) and the module.
_IMPORTS = textwrap.dedent(
    r"""
    import os, sys, threading
    from polytrack import _forkgate
    found = []

    def audit(event, args):
        thread = threading.current_thread().name
        if event == "import" and thread.startswith("polytrack-"):
            where = "in" if _forkgate.held_here() else "out"
            found.append((where, thread.split("-")[1], args[0]))

    sys.addaudithook(audit)
    import polytrack

    home = sys.argv[1]
    os.environ["POLYTRACK_CACHE_DIR"] = os.path.join(home, "cold-cache")
    os.environ["POLYTRACK_BACKEND"] = "polytrack+file://" + os.path.join(home, "remote")
    run = polytrack.init(project="imports", dir=home)
    run.log_metrics({"loss": 0.5}, step=0)  # something for the sync worker to send
    # Shaped like a GitHub token: the output reader loads detect-secrets to redact it.
    print("token ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8", flush=True)
    run.finish()  # finish() joins them
    for where, thread, module in found:
        print("import", where, thread, module)
    """
)


def test_the_runs_threads_import_only_inside_the_fork_gate(tmp_path: Path) -> None:
    """No thread of the run imports outside the fork gate: not the capture threads (git,
    the package list with its cache cold, hardware, system metrics), not the sync worker
    (a `polytrack+file://` backend: the engine, numpy, the first batch), not the output
    reader loading detect-secrets for a printed token. A fork never finds one of their
    imports half done."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('hi')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "train.py").write_text("print('changed')\n")  # a diff for git to capture
    script = tmp_path / "imports.py"
    script.write_text(_IMPORTS)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "home")],
        cwd=repo,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    (view,) = polytrack.runs(project="imports", home=tmp_path / "home")
    assert "token [REDACTED]" in [line.text for line in view.logs()]  # the reader saw it
    lines = done.stdout.decode().splitlines()
    found = [line.split(" ")[1:] for line in lines if line.startswith("import ")]
    assert [(thread, module) for where, thread, module in found if where == "out"] == []
    inside = {(thread, module) for where, thread, module in found if where == "in"}
    assert {
        ("snapshot", "polytrack.capture.git"),
        ("snapshot", "polytrack.capture.environment"),
        ("sync", "polytrack.sync.engine"),
        ("sync", "numpy"),
    } <= inside
    assert "psutil" in {module for _, module in inside}
    # By the output reader (detect-secrets loads its plugins with importlib, which the
    # audit hook does not see; their own imports it does).
    assert any(thread == "logs" and name.startswith("detect_secrets") for thread, name in inside)


def _open_connections() -> list[sqlite3.Connection]:
    """The SQLite connections alive in this process and not closed."""
    found = []
    with warnings.catch_warnings():
        # isinstance() reads `__class__`, which some libraries' deprecated objects warn
        # on (torch.distributed.reduce_op, once torch is imported in this process).
        warnings.simplefilter("ignore")
        objects = [thing for thing in gc.get_objects() if isinstance(thing, sqlite3.Connection)]
    for thing in objects:
        try:
            thing.total_changes  # noqa: B018  (raises once it is closed)
        except sqlite3.ProgrammingError:
            continue
        found.append(thing)
    return found


def test_the_store_leaves_no_connection_for_the_garbage_collector(tmp_path: Path) -> None:
    """Opening and closing the store closes every SQLite connection it made. One left
    open is closed by the garbage collector (a connection is in a reference cycle), on
    whatever thread collects it: a sync worker, say, at the instant the user's thread
    forks, and the child's first SQLite call (its run's `finish()`) waits for good."""
    polytrack.init(dir=tmp_path / "home").finish()  # a home with an index file
    with warnings.catch_warnings():  # earlier tests' garbage is not this test's subject
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.disable()  # nothing collected meanwhile: what is left open is seen
    try:
        before = {id(connection) for connection in _open_connections()}
        with LocalStore.open(tmp_path / "home"):
            pass
        left = [c for c in _open_connections() if id(c) not in before]
    finally:
        gc.enable()
    assert left == []
