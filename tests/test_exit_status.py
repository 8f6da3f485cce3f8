"""A run's final status says how its script ended, with or without a `with` block, and the
script's own exit status stays what it would be without polytrack. Each case runs as a
real script (exit hooks and signals belong to a whole process), twice: with polytrack,
and plain, for the exit status to compare with."""

from __future__ import annotations

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
    ("returns", "pass", "succeeded", None),
    ("raises", "raise ValueError('bad data')", "failed", "ValueError: bad data"),
    # argparse's way: a sys.exit() that is caught does not end the script.
    ("exit-caught", "try:\n    sys.exit(2)\nexcept SystemExit:\n    pass", "succeeded", None),
]


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
    ("ending", "status", "message"),
    [case[1:] for case in _ENDINGS],
    ids=[case[0] for case in _ENDINGS],
)
def test_the_status_follows_the_exit_code(
    tmp_path: Path, how: str, ending: str, status: str, message: str | None
) -> None:
    """sys.exit(0) and sys.exit() succeed, any other code fails naming it, the same with
    or without a `with` block; the script's exit status is unchanged."""
    script = _write_script(tmp_path, ending)
    plain = _run(script, tmp_path / "plain-home", "plain")
    tracked = _run(script, tmp_path / "home", how)
    assert tracked.returncode == plain.returncode, tracked.stderr.decode(errors="replace")
    assert tracked.stderr == plain.stderr or b"Traceback" in plain.stderr
    assert _the_run(tmp_path / "home") == (status, message)


def test_a_raised_system_exit_in_a_with_block_is_judged_by_its_code(tmp_path: Path) -> None:
    """`raise SystemExit(75)` (not through sys.exit) fails the run in a `with` block."""
    script = _write_script(tmp_path, "raise SystemExit(75)")
    done = _run(script, tmp_path / "home", "with")
    assert done.returncode == 75
    assert _the_run(tmp_path / "home") == ("failed", "SystemExit: exit code 75")


# -- stop signals ----------------------------------------------------------------------------

_WAITS = 'print("ready", flush=True)\nwhile True:\n    time.sleep(0.05)'

# A handler of the script's own, installed before init(): it is called, and decides.
_OWN_HANDLER = (
    "def on_term(signum, frame):\n    sys.exit(143)\nsignal.signal(signal.SIGTERM, on_term)\n"
)


def _signalled(script: Path, home: Path, how: str, signum: int) -> tuple[int, bytes]:
    """Start the script, wait until it is ready, send it `signum`: its exit status, stderr."""
    process = subprocess.Popen(
        [sys.executable, str(script), str(home), how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    return process.returncode, err


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
