"""stdout/stderr capture: wrap mode in this process, redirect mode in real subprocesses."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _terminal import run_on_terminals
from polytrack.capture.logs import LogCapture, LogLine, read_log
from polytrack.errors import InvalidInputError, TrackingWarning


def texts(path: Path, stream: str | None = None) -> list[str]:
    return [line.text for line in read_log(path) if stream is None or line.stream == stream]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "run" / "output.log"


@pytest.fixture
def keep_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put sys.stdout and sys.stderr back after the test, whatever it did to them."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)


# -- wrap mode, in this process -------------------------------------------------------------


def test_wrap_tees_lines_and_the_terminal_gets_the_same_text(
    capsys: pytest.CaptureFixture[str], log: Path
) -> None:
    """Wrap mode: print() reaches the terminal unchanged and the log gets timestamped lines."""
    capture = LogCapture(log, max_bytes=1 << 20, mode="auto", run_id="t")
    before = time.time()
    capture.start()
    assert capture.mode == "wrap"  # pytest replaced the streams: auto must not redirect
    print("hello")
    print("to stderr", file=sys.stderr)
    sys.stdout.write("one\ntwo\nthr")
    sys.stdout.writelines(["ee\n", "", "last without newline"])
    capture.stop()
    after = time.time()
    out, err = capsys.readouterr()
    assert out == "hello\none\ntwo\nthree\nlast without newline"
    assert err == "to stderr\n"
    lines = read_log(log)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "hello"),
        ("stderr", "to stderr"),
        ("stdout", "one"),
        ("stdout", "two"),
        ("stdout", "three"),
        ("stdout", "last without newline"),
    ]
    assert all(before - 0.001 <= line.t <= after + 0.001 for line in lines)


def test_stop_restores_the_very_same_stream_objects(log: Path) -> None:
    """stop() puts the original sys.stdout/sys.stderr objects back; a second stop is a no-op."""
    out, err = sys.stdout, sys.stderr
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    assert sys.stdout is not out and sys.stderr is not err
    assert sys.stdout.encoding == out.encoding and sys.stdout.isatty() == out.isatty()
    capture.stop()
    capture.stop()
    assert sys.stdout is out and sys.stderr is err


def test_logging_handler_created_after_start_is_captured(
    capsys: pytest.CaptureFixture[str], log: Path
) -> None:
    """A StreamHandler made after start() is teed; after stop() it still prints, unrecorded."""
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    logger = logging.getLogger("polytrack-test-capture")
    handler = logging.StreamHandler()  # takes sys.stderr now: the proxy
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("while capturing")
        capture.stop()
        logger.warning("after stop")
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err == "WARNING while capturing\nWARNING after stop\n"
    assert texts(log) == ["WARNING while capturing"]


def test_tqdm_progress_bar_is_one_line(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    """A tqdm bar of many \\r updates is one line in the log, while the terminal gets all."""
    tqdm = pytest.importorskip("tqdm").tqdm
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    for _ in tqdm(range(50), mininterval=0, miniters=1, bar_format="{n_fmt}/{total_fmt}"):
        pass
    print("done")
    capture.stop()
    err = capsys.readouterr().err
    assert err.count("\r") >= 50 and err.endswith("\r50/50\n")
    assert [(line.stream, line.text) for line in read_log(log)] == [
        ("stderr", "50/50"),
        ("stdout", "done"),
    ]


def test_carriage_returns_keep_the_final_state(
    capsys: pytest.CaptureFixture[str], log: Path
) -> None:
    """\\r rewrites keep the last non-empty state; CRLF ends a line; a pending bar is flushed."""
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    sys.stdout.write("a\rb\rc\n")
    sys.stdout.write("10%\r")
    sys.stdout.write("20%\r")
    sys.stdout.write("\n")
    sys.stdout.write("windows\r\n")
    sys.stdout.write("\r 1/3")
    sys.stdout.write("\r 2/3")
    capture.stop()
    assert capsys.readouterr().out == "a\rb\rc\n10%\r20%\r\nwindows\r\n\r 1/3\r 2/3"
    assert texts(log) == ["c", "20%", "windows", " 2/3"]


def test_buffer_writes_are_teed(log: Path, keep_streams: None) -> None:
    """Bytes written to sys.stdout.buffer are recorded too, decoded as UTF-8."""
    target = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    sys.stdout = target
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    sys.stdout.buffer.write("caf\u00e9 ".encode()[:4])  # a character split across writes
    sys.stdout.buffer.write("caf\u00e9 ".encode()[4:] + b"bytes\n")
    capture.stop()
    assert target.buffer.getvalue() == "café bytes\n".encode()
    assert texts(log) == ["café bytes"]


def test_write_patched_on_the_proxy_like_ipython_does(
    capsys: pytest.CaptureFixture[str], log: Path
) -> None:
    """IPython replaces sys.stdout.write per cell with a wrapper of the previous write:
    that must neither recurse nor stop the tee, and undoing it must leave a working proxy."""
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    stream = sys.stdout
    original_write = stream.write
    seen: list[str] = []

    def write(data: str) -> int:
        seen.append(data)
        return int(original_write(data))

    stream.write = write  # type: ignore[method-assign]
    print("in the cell")
    stream.write = original_write  # type: ignore[method-assign]
    print("after the cell")
    capture.stop()
    assert seen == ["in the cell", "\n"]
    assert capsys.readouterr().out == "in the cell\nafter the cell\n"
    assert texts(log) == ["in the cell", "after the cell"]


def test_a_stream_replaced_after_start_is_left_alone(log: Path, keep_streams: None) -> None:
    """stop() doesn't undo someone else's replacement; the proxy they restore only forwards."""
    terminal = io.StringIO()
    sys.stdout = terminal
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    proxy = sys.stdout
    inner = io.StringIO()
    with contextlib.redirect_stdout(inner):
        print("to the inner stream")
        capture.stop()
        assert sys.stdout is inner
    assert sys.stdout is proxy  # restored by redirect_stdout, as it must be
    print("after stop, through the old proxy")
    assert inner.getvalue() == "to the inner stream\n"
    assert terminal.getvalue() == "after stop, through the old proxy\n"
    assert texts(log) == []


def test_size_cap_truncates_the_file_not_the_output(
    capsys: pytest.CaptureFixture[str], log: Path
) -> None:
    """Past max_bytes the log gets one truncation line and nothing more; output goes on."""
    capture = LogCapture(log, max_bytes=300, mode="wrap", run_id="t")
    capture.start()
    for i in range(100):
        print(f"line {i:03d}")
    capture.stop()
    assert capsys.readouterr().out == "".join(f"line {i:03d}\n" for i in range(100))
    lines = read_log(log)
    *kept, mark = lines
    size = sum(len(f"{line.t:.3f} o {line.text}\n") for line in kept)
    assert size <= 300 and len(kept) == size // len("1764000000.000 o line 000\n")
    assert [line.text for line in kept] == [f"line {i:03d}" for i in range(len(kept))]
    assert mark.stream == "polytrack"
    assert mark.text == f"[polytrack: log truncated after {size} bytes]"


def test_control_characters_round_trip(log: Path, keep_streams: None) -> None:
    """Escapes, backslashes, tabs and NULs survive the file format exactly."""
    sys.stdout = io.StringIO()
    capture = LogCapture(log, max_bytes=1 << 20, mode="wrap", run_id="t")
    capture.start()
    text = "\x1b[31mred\x1b[0m\tC:\\path\\x41 \x00 end \u2028 more"
    print(text)
    capture.stop()
    assert texts(log) == [text]
    assert log.read_bytes().count(b"\n") == 1


def test_read_log_tail_and_missing_file(tmp_path: Path) -> None:
    """tail= returns the last lines from the end of the file; a missing log reads as []."""
    path = tmp_path / "output.log"
    assert read_log(path) == []
    path.write_text("".join(f"1764000000.{i % 1000:03d} e line {i}\n" for i in range(20_000)))
    assert read_log(path, tail=3) == [
        LogLine(t=1764000000.997, stream="stderr", text="line 19997"),
        LogLine(t=1764000000.998, stream="stderr", text="line 19998"),
        LogLine(t=1764000000.999, stream="stderr", text="line 19999"),
    ]
    assert read_log(path, tail=0) == []
    assert len(read_log(path, tail=50_000)) == len(read_log(path)) == 20_000


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_failing_log_file_warns_once_and_output_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A log write that fails (disk full) warns once; the program's output is unaffected."""
    capture = LogCapture(Path("/dev/full"), max_bytes=1 << 20, mode="wrap", run_id="t")
    with pytest.warns(TrackingWarning, match="stopped recording output") as record:
        capture.start()
        print("first")
        print("second")
        capture.stop()
    assert len(record) == 1
    assert capsys.readouterr().out == "first\nsecond\n"


def test_an_unknown_mode_is_refused(log: Path) -> None:
    """A console mode other than auto, wrap and redirect raises InvalidInputError."""
    with pytest.raises(InvalidInputError, match="console"):
        LogCapture(log, max_bytes=1, mode="tee", run_id="t")


# -- redirect mode, in subprocesses ---------------------------------------------------------

# Prints through every path a training script has to fds 1 and 2. With "capture" it runs
# between LogCapture.start() and stop(), else it runs plain: the terminal must not tell.
_SCRIPT = textwrap.dedent(
    r"""
    import faulthandler, logging, os, subprocess, sys, time
    from pathlib import Path
    from tqdm import tqdm
    from polytrack.capture.logs import LogCapture

    faulthandler.enable()  # as `python -X faulthandler` does
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    capture = LogCapture(Path(sys.argv[1]), max_bytes=1 << 20, mode="auto", run_id="t")
    if sys.argv[2] == "capture":
        capture.start()
        assert capture.mode == "redirect", capture.mode
    print("stdout is a tty:", sys.stdout.isatty(), flush=True)
    print("print", flush=True)
    logging.info("from a handler configured before start")
    subprocess.run(["echo", "from echo"], check=True)
    child = "import sys; print('child tty:', sys.stdout.isatty()); sys.stderr.write('child\\n')"
    subprocess.run([sys.executable, "-c", child], check=True)
    os.write(1, b"raw \xff bytes\n")
    for _ in tqdm(range(30), mininterval=0, miniters=1, bar_format="{l_bar}{bar:10}| {n_fmt}"):
        pass
    sys.stdout.write("partial")
    sleeper = subprocess.Popen(["sleep", "5"])  # holds the pipe past stop()
    started = time.monotonic()
    capture.stop()
    took = time.monotonic() - started
    sleeper.kill()
    sleeper.wait()
    print(" and after stop", flush=True)
    if took > 1.0:
        sys.exit(f"stop() took {took:.2f} s with a child holding the pipe")
    """
)


def _run_script(tmp_path: Path, name: str, capture: bool, *, tty: bool) -> tuple[bytes, bytes]:
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    argv = [sys.executable, str(script), str(tmp_path / name), "capture" if capture else "-"]
    if not tty:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout, done.stderr
    returncode, out, err = run_on_terminals(argv, size=(24, 80), timeout=60)
    assert returncode == 0, err.decode(errors="replace")
    return out, err


@pytest.mark.slow
@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "terminal"])
def test_redirect_captures_descriptors_and_leaves_the_terminal_unchanged(
    tmp_path: Path, tty: bool
) -> None:
    """A plain script: subprocesses, earlier handlers, raw fd writes and tqdm are captured,
    the terminal gets the same bytes as without capture, and a terminal stays a terminal."""
    pytest.importorskip("tqdm")
    plain = _run_script(tmp_path, "plain.log", False, tty=tty)
    before = time.time()
    captured = _run_script(tmp_path, "output.log", True, tty=tty)
    after = time.time()
    assert captured == plain
    assert not (tmp_path / "plain.log").exists()
    lines = read_log(tmp_path / "output.log")
    assert all(before <= line.t <= after for line in lines)
    assert texts(tmp_path / "output.log", "stdout") == [
        f"stdout is a tty: {tty}",
        "print",
        "from echo",
        f"child tty: {tty}",
        "raw \ufffd bytes",
        "partial",
    ]
    *others, bar = texts(tmp_path / "output.log", "stderr")
    assert others == ["INFO from a handler configured before start", "child"]
    assert bar.startswith("100%|") and bar.endswith("| 30")
    assert plain[1].count(b"\r") >= 30


@pytest.mark.slow
def test_a_fatal_signal_traceback_still_reaches_the_terminal(tmp_path: Path) -> None:
    """faulthandler's dump bypasses the pipe, which dies with the process, in redirect mode."""
    script = textwrap.dedent(
        """
        import faulthandler, sys
        from pathlib import Path
        from polytrack.capture.logs import LogCapture

        faulthandler.enable()
        capture = LogCapture(Path(sys.argv[1]), max_bytes=1 << 20, mode="redirect", run_id="t")
        capture.start()
        faulthandler._sigsegv()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "output.log")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode < 0
    assert b"Fatal Python error: Segmentation fault" in done.stderr
