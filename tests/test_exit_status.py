"""A run's final status says how its script ended, with or without a `with` block, and the
script's own exit status stays what it would be without polytrack. Each case runs as a
real script (exit hooks and signals belong to a whole process), twice: with polytrack,
and plain, for the exit status to compare with."""

from __future__ import annotations

import builtins
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import polytrack

# The script runs `ENDING` (indented into its place) with a run (in a `with` block or
# not), or plain when its second argument is "plain".
_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    import polytrack

    def main():
    {ending}

    if sys.argv[2] == "plain":
        main()
    elif sys.argv[2] == "with":
        with polytrack.init(project="exit", dir=sys.argv[1]):
            main()
    else:
        polytrack.init(project="exit", dir=sys.argv[1])
        main()
    """
)

# (id, the end of main(), status, what the message holds; None: no message)
_ENDINGS = [
    ("exit-0", "sys.exit(0)", "succeeded", None),
    ("exit-none", "sys.exit()", "succeeded", None),
    ("exit-1", "sys.exit(1)", "failed", "SystemExit: exit code 1"),
    ("exit-fatal", 'sys.exit("fatal")', "failed", "SystemExit: exit code 1: fatal"),
    ("exit-75", "sys.exit(75)", "failed", "SystemExit: exit code 75"),
    # By hand, and by site's exit() and quit() (builtins), not through sys.exit.
    ("raise-75", "raise SystemExit(75)", "failed", "SystemExit: exit code 75"),
    ("raise-fatal", 'raise SystemExit("fatal")', "failed", "SystemExit: exit code 1: fatal"),
    ("builtin-exit-3", "exit(3)", "failed", "SystemExit: exit code 3"),
    ("builtin-quit-0", "quit(0)", "succeeded", None),
    ("returns", "pass", "succeeded", None),
    ("raises", "raise ValueError('bad data')", "failed", "ValueError: bad data"),
    # argparse's way: a sys.exit() that is caught does not end the script; nor does a
    # SystemExit caught in the script's outermost frame.
    ("exit-caught", "try:\n    sys.exit(2)\nexcept SystemExit:\n    pass", "succeeded", None),
    (
        "raise-caught",
        "try:\n    raise SystemExit(2)\nexcept SystemExit:\n    pass",
        "succeeded",
        None,
    ),
]

# Before Python 3.12, no hook sees the code of a SystemExit raised by hand (not through
# sys.exit, exit() or quit()) that ends a script outside a `with` block: such a run is
# recorded succeeded, as docs/tracking.md says (the reasons are in polytrack._state).
_BY_HAND = frozenset({"raise-75", "raise-fatal"})
_BY_HAND_SEEN = sys.version_info >= (3, 12)


def _write_script(tmp_path: Path, ending: str) -> Path:
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT.format(ending=textwrap.indent(ending, "    ")))
    return script


def _run(script: Path, home: Path, how: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(script), str(home), how],
        capture_output=True,
        timeout=60,
        check=False,
    )


def _the_run(home: Path) -> tuple[str, str | None]:
    (view,) = polytrack.runs(project="exit", home=home)
    return view.status, view.message


@pytest.mark.slow
@pytest.mark.parametrize("how", ["with", "bare"], ids=["with-block", "no-with-block"])
@pytest.mark.parametrize(
    ("case", "ending", "status", "message"), _ENDINGS, ids=[case[0] for case in _ENDINGS]
)
def test_the_status_follows_the_exit_code(
    tmp_path: Path, how: str, case: str, ending: str, status: str, message: str | None
) -> None:
    """A SystemExit with code 0 or None succeeds, any other code fails naming it, whether
    it comes of sys.exit(), exit(), quit() or a raise, the same with or without a `with`
    block (but see _BY_HAND); the script's exit status and output are unchanged."""
    script = _write_script(tmp_path, ending)
    plain = _run(script, tmp_path / "plain-home", "plain")
    tracked = _run(script, tmp_path / "home", how)
    assert tracked.returncode == plain.returncode, tracked.stderr.decode(errors="replace")
    assert tracked.stderr == plain.stderr or b"Traceback" in plain.stderr
    if how == "bare" and case in _BY_HAND and not _BY_HAND_SEEN:
        status, message = "succeeded", None
    assert _the_run(tmp_path / "home") == (status, message)


def _monitoring_tools() -> list[str | None]:
    """Who holds each sys.monitoring tool id (Python 3.12+; none before)."""
    monitoring = getattr(sys, "monitoring", None)
    return [] if monitoring is None else [monitoring.get_tool(tool) for tool in range(6)]


def test_the_exit_hooks_are_put_back_once_no_run_is_left(tmp_path: Path) -> None:
    """While a run lives, sys.exit, `exit` and `quit` are wrapped (the last two shown as
    before), and on 3.12+ a sys.monitoring tool id is held; once the run is finished, the
    originals are back and the id is free."""
    quitters = {name: getattr(builtins, name) for name in ("exit", "quit")}
    sys_exit, tools = sys.exit, _monitoring_tools()
    run = polytrack.init(dir=tmp_path / "home")
    for name, original in quitters.items():
        assert getattr(builtins, name) is not original
        assert repr(getattr(builtins, name)) == repr(original)
    assert sys.exit is not sys_exit
    assert ("polytrack" in _monitoring_tools()) == (sys.version_info >= (3, 12))
    run.finish()
    assert {name: getattr(builtins, name) for name in ("exit", "quit")} == quitters
    assert sys.exit is sys_exit
    assert _monitoring_tools() == tools


# -- stop signals ----------------------------------------------------------------------------

_WAITS = 'print("ready", flush=True)\nwhile True:\n    time.sleep(0.05)'

# A handler of the script's own, installed before init(): it is called, and decides.
_OWN_HANDLER = (
    "def on_term(signum, frame):\n    sys.exit(143)\nsignal.signal(signal.SIGTERM, on_term)\n"
)


def _signalled(script: Path, home: Path, how: str, signum: int) -> tuple[int, bytes]:
    """Start the script, wait until it is ready, send it `signum`: its exit status, stderr."""
    # With each signal's default action, whatever this process inherited: under `nohup`
    # (how a CI runner may start) SIGHUP is ignored, which the script, plain or tracked,
    # would inherit, and polytrack rightly never installs a handler over SIG_IGN.
    with subprocess.Popen(
        [sys.executable, str(script), str(home), how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_stop_signals,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"
            process.send_signal(signum)
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
            process.wait()
    return process.returncode, err


def _default_stop_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["with", "bare"], ids=["with-block", "no-with-block"])
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_the_run_and_the_process_as_without_polytrack(
    tmp_path: Path, how: str, name: str
) -> None:
    """SIGTERM and SIGHUP record the run stopped, naming the signal; the process then
    dies of the signal, as it would have without polytrack."""
    signum = getattr(signal, name)
    script = _write_script(tmp_path, _WAITS)
    plain, _ = _signalled(script, tmp_path / "plain-home", "plain", signum)
    tracked, err = _signalled(script, tmp_path / "home", how, signum)
    assert tracked == plain, err.decode(errors="replace")
    assert _the_run(tmp_path / "home") == ("stopped", f"stopped by {name}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["with", "bare"], ids=["with-block", "no-with-block"])
def test_a_previous_signal_handler_is_called_and_decides(tmp_path: Path, how: str) -> None:
    """The script's own SIGTERM handler, installed before init(), still runs and sets the
    exit status (its sys.exit(143)); the run is recorded stopped by SIGTERM."""
    script = _write_script(tmp_path, _WAITS)
    script.write_text(script.read_text().replace("def main():", _OWN_HANDLER + "def main():"))
    plain, _ = _signalled(script, tmp_path / "plain-home", "plain", signal.SIGTERM)
    tracked, err = _signalled(script, tmp_path / "home", how, signal.SIGTERM)
    assert tracked == plain == 143, err.decode(errors="replace")
    assert _the_run(tmp_path / "home") == ("stopped", "stopped by SIGTERM")
