"""Capture of a run's stdout and stderr into its log file, the terminal left as it was.

Everything the program prints still reaches the terminal (or notebook, or pytest) byte
for byte; a copy goes, line by line with a timestamp, into the run's log file. Two ways:

- **wrap**: `sys.stdout` and `sys.stderr` become proxies that forward every call and
  attribute to the stream that was there (so `isatty()`, `encoding`, `fileno()` and a
  notebook's `OutStream` behave as before) and tee the text. Writes to
  `sys.stdout.buffer` are teed too (decoded as UTF-8). What does not go through these
  Python objects is not captured: subprocesses, forked children, C code writing to fd 1,
  and handlers that took the stream before `start()` (a `logging.StreamHandler`
  configured earlier). `stop()` puts the original objects back; a handler made in
  between keeps the proxy, which then only forwards.
- **redirect**: file descriptors 1 and 2 are pointed (`dup2`) at pipes read by a thread,
  `polytrack-logs-<run>`, which forwards the bytes to the original descriptors and
  records the lines. That catches everything written to the descriptors: subprocesses,
  forked workers, C code, handlers configured earlier. Where the original descriptor is a
  terminal, the pipe is a pseudo-terminal instead (its output processing off, the real
  terminal's window size copied and followed once a second), so that `isatty()` stays
  true for the process and its children: colours, progress bars and line buffering
  don't change because the run is tracked. stdout and stderr go through two pipes, so
  writes to both within the same instant may reach the terminal in another order.
  `faulthandler`, if enabled, is pointed at the real stderr meanwhile: a fatal signal's
  traceback must not sit in a pipe that dies with the process.
- **auto** (the default) redirects in a plain script, where `sys.stdout is sys.__stdout__`
  writes to fd 1 and the same for stderr, and wraps everywhere else (notebooks, pytest,
  streams the user replaced). Redirect needs POSIX; elsewhere it wraps.

One capture is in one mode, so no line is recorded twice.

Lines: a line ends at `\\n` and is stamped when it ends. Text rewritten with `\\r`
(progress bars) is collapsed: a line keeps only its last non-empty state, and only that
state is held meanwhile, so a bar of a million updates is one line and no memory. The
partial line is written at `stop()`. A line longer than 64 KiB is cut into pieces.

Log file format, one record per line:

    <unix time: seconds.milliseconds> <o|e|p> <text>\\n

`o` stdout, `e` stderr, `p` a note from polytrack itself (the truncation mark). In the
text, `\\` and control characters other than tab are escaped (`\\\\`, `\\x1b`), so a
record is always one line; `read_log` undoes it. Once the file would grow past
`max_bytes` it gets one last `p` record, `[polytrack: log truncated after N bytes]`, and
further lines are dropped; the terminal still gets everything. A failing write (a full
disk) warns once with `TrackingWarning` and stops the file, not the output.

What a crash (`kill -9`, `os._exit`) loses: nothing already recorded (each batch of
lines is one `os.write`, in the page cache when it returns); the partial line not yet
ended by a newline; and in redirect mode whatever was still in the pipes, not yet read
by the thread, which the terminal never gets either (usually nothing; at most a pipe's
worth). The same holds for an exit that skips `stop()`: the run's `finish()` must stop
the capture, at exit too.

Children outlive the run: after `stop()`, a subprocess or a fork-pool worker started
during the run still writes into the pipe it inherited. The reader thread goes on
forwarding that to the real terminal (recording nothing) until the last such writer
closes the pipe, so none of them dies of `EPIPE` (`SIGPIPE` for a shell) or blocks on a
full pipe. It is a daemon thread, so it never keeps the process from exiting: a child
that writes after the process itself has exited gets `EPIPE`, as it would writing into
any closed pipe. Forked children close their copies of the pipes' read ends (else a pipe
outliving the parent would still have a reader and fill up).
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import errno
import faulthandler
import functools
import os
import re
import select
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from attrs import frozen

from polytrack.errors import InvalidInputError, StoreError, TrackingWarning
from polytrack.redact import redact_lines

__all__ = ["STREAMS", "LogCapture", "LogLine", "LogWriter", "read_log"]

STREAMS: Final = {"o": "stdout", "e": "stderr", "p": "polytrack"}
_MODES: Final = ("auto", "wrap", "redirect")
# A line without a newline is cut here, so that endless output without one stays bounded.
_MAX_LINE: Final = 64 * 1024
_READ_SIZE: Final = 64 * 1024
# At stop, the reader drains the pipes until they are quiet this long (a child may hold
# them open) or for at most _DRAIN_MAX seconds (a child may keep writing).
_DRAIN_IDLE: Final = 0.05
_DRAIN_MAX: Final = 1.0
_WINSIZE_POLL: Final = 1.0
_CODE_PREFIX: Final = {"o": b"o ", "e": b"e "}
_ESCAPE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\\]")
_UNESCAPE: Final = re.compile(rb"\\(\\|x[0-9a-f]{2})")


@frozen
class LogLine:
    """One line of a run's output: when it was completed, on which stream, its text."""

    t: float  # unix time
    stream: str  # "stdout", "stderr", or "polytrack" for polytrack's own notes
    text: str


def read_log(path: Path, *, tail: int | None = None) -> list[LogLine]:
    """Read the lines of a log file written by `LogCapture`.

    Args:
        path: the log file; a run that captured nothing has none, which reads as `[]`.
        tail: only the last `tail` lines (read from the end of the file).

    Raises:
        StoreError: the file exists but cannot be read.

    Example:
        >>> [line.text for line in read_log(run_dir / "output.log", tail=2)]  # doctest: +SKIP
        ['epoch 9: loss 0.12', 'done']
    """
    try:
        with open(path, "rb") as file:
            data = file.read() if tail is None else _read_tail(file, tail)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read the log {path}: {exc}") from exc
    lines = [line for line in map(_parse, data.split(b"\n")) if line is not None]
    if tail is not None:
        return lines[-tail:] if tail > 0 else []
    return lines


class LogCapture:
    """Tees stdout and stderr into a run's log file while they still reach the terminal.

    Args:
        path: the log file (created, or appended to; the size cap counts what is there).
        max_bytes: the size after which lines are no longer recorded.
        mode: "auto", "wrap" or "redirect" (see the module's docstring).
        run_id: names the reader thread of redirect mode, `polytrack-logs-<run_id>`.

    Raises:
        InvalidInputError: an unknown `mode`.

    Failures to capture never reach the program: `start()` and `stop()` warn
    (`TrackingWarning`) and output goes on as without capture.

    Example:
        >>> capture = LogCapture(tmp / "output.log", max_bytes=10 << 20, run_id="demo")
        >>> capture.start(); print("hello"); capture.stop()  # doctest: +SKIP
        hello
        >>> [line.text for line in read_log(tmp / "output.log")]  # doctest: +SKIP
        ['hello']
    """

    def __init__(self, path: Path, *, max_bytes: int, mode: str = "auto", run_id: str) -> None:
        if mode not in _MODES:
            raise InvalidInputError(f"console must be one of {', '.join(_MODES)}; got {mode!r}")
        self._path = path
        self._max_bytes = max_bytes
        self._requested = mode
        self._run_id = run_id
        self._state = "new"  # -> "started" -> "stopped"
        self._mode: str | None = None
        # Held while splitting lines and writing the file; a signal handler that prints
        # while its thread is inside re-enters instead of deadlocking.
        self._lock = threading.RLock()
        self._file: _LogFile | None = None
        self._lines = {"o": _Lines(), "e": _Lines()}
        self._decoders = {code: _decoder() for code in "oe"}
        # wrap
        self._proxies: dict[str, _TeeStream] = {}
        self._originals: dict[str, TextIO | None] = {}
        # redirect
        self._redirects: list[_Redirect] = []
        self._wake: tuple[int, int] | None = None
        self._faulthandler = False
        self._stopping = False
        self._drained = threading.Event()  # set by the reader: what the run wrote is read
        self._lingering = False  # children still hold the pipes: the reader forwards on
        self._fds_closed = False  # the pipes' read ends, closed (here, or in a forked child)
        self._wake_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def mode(self) -> str | None:
        """The mode in effect once started ("wrap" or "redirect"), else None."""
        return self._mode

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start capturing. A second call does nothing; so does a call after `stop()`."""
        if self._state != "new":
            return
        self._state = "started"
        try:
            self._file = _LogFile.open(self._path, self._max_bytes)
        except OSError as exc:
            _warn(f"polytrack cannot write the run's log {self._path}: {exc}; not capturing")
            self._state = "stopped"
            return
        mode = _resolve(self._requested)
        if mode == "redirect":
            try:
                self._start_redirect()
            except Exception as exc:  # no descriptors left, no terminal to copy, ...
                _warn(f"polytrack cannot redirect stdout and stderr ({exc}); wrapping them")
                mode = "wrap"
        if mode == "wrap":
            self._start_wrap()
        self._mode = mode
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def stop(self) -> None:
        """Stop capturing: restore the streams and descriptors, record pending partial
        lines, join the reader thread and close the file. Idempotent."""
        if self._state != "started":
            self._state = "stopped"
            return
        self._state = "stopped"
        if self._mode == "redirect":
            if not self._stop_redirect():
                return
        else:
            self._stop_wrap()
        with self._lock:
            file, self._file = self._file, None
            if file is not None:
                for code in "oe":
                    text = self._decoders[code].decode(b"", final=True)
                    lines = list(self._lines[code].feed(text)) if text else []
                    last = self._lines[code].flush()
                    if last is not None:
                        lines.append(last)
                    if lines:
                        file.write(time.time(), code, lines)
                file.close()
        if file is not None:
            file.warn_if_failed()

    # -- recording, shared by both modes ----------------------------------------------------

    def _tee(self, code: str, text: str) -> None:
        """Record `text` written to stream `code`; never raises into the writer.

        This is on the path of every print() in wrap mode: keep it short.
        """
        file = self._file
        if file is None or not file.active:  # the common case once truncated: no lock
            return
        try:
            with self._lock:
                if self._file is not file:  # stop() closed it meanwhile
                    return
                lines = self._lines[code].feed(text)
                if lines:
                    file.write(time.time(), code, lines)
        except Exception as exc:  # a bug here must not break the program's print()
            file.fail(exc)
        if file.error is not None:
            file.warn_if_failed()

    def _record_bytes(self, code: str, data: bytes) -> None:
        """Record bytes written to stream `code` (its descriptor, or `.buffer`)."""
        file = self._file
        if file is None or not file.active:
            return
        try:
            with self._lock:  # the decoder keeps state between calls
                if self._file is not file:
                    return
                text = self._decoders[code].decode(data)
                lines = self._lines[code].feed(text) if text else ()
                if lines:
                    file.write(time.time(), code, lines)
        except Exception as exc:
            file.fail(exc)
        if file.error is not None:
            file.warn_if_failed()

    # -- wrap -------------------------------------------------------------------------------

    def _start_wrap(self) -> None:
        for code, name in (("o", "stdout"), ("e", "stderr")):
            original = getattr(sys, name)
            self._originals[name] = original
            if original is None:  # pythonw, a daemon: nothing to capture
                continue
            proxy = _TeeStream(original, code, self._tee, self._record_bytes)
            self._proxies[name] = proxy
            setattr(sys, name, proxy)

    def _stop_wrap(self) -> None:
        for name, proxy in self._proxies.items():
            proxy._polytrack_detach()
            # Restore only our own proxy: whoever replaced it after start() will restore
            # it later, and it then forwards without teeing.
            if getattr(sys, name) is proxy:
                setattr(sys, name, self._originals[name])

    # -- redirect ---------------------------------------------------------------------------

    def _start_redirect(self) -> None:
        _flush_python()
        redirects: list[_Redirect] = []
        try:
            for fd, code in ((1, "o"), (2, "e")):
                redirects.append(_Redirect.open(fd, code))
            self._wake = os.pipe()
        except Exception:
            for redirect in redirects:
                redirect.close()
            raise
        _flush_libc()
        for redirect in redirects:
            redirect.install()
        self._redirects = redirects
        if faulthandler.is_enabled():
            # A fatal signal's traceback written into the pipe dies with the process and
            # its reader: send it straight to the terminal (unrecorded) instead.
            self._faulthandler = True
            faulthandler.enable(file=redirects[1].saved)
        self._thread = threading.Thread(
            target=self._read_loop, name=f"polytrack-logs-{self._run_id}", daemon=True
        )
        self._thread.start()
        atexit.register(self._drain_at_exit)

    def _stop_redirect(self) -> bool:
        """Restore fds 1 and 2 and drain the pipes; False if the reader hangs.

        Children that still hold a pipe (a subprocess, a fork-pool worker started during
        the run) are not cut off: the reader goes on forwarding what they write to the
        terminal, recording nothing, until the last of them closes it, and then closes the
        pipes itself (see `_read_loop`).
        """
        # Whatever the program wrote before this point goes into the pipes, then the
        # descriptors are the terminal again; only then is the reader told to drain.
        _flush_python()
        _flush_libc()
        for redirect in self._redirects:
            redirect.restore()
        if self._faulthandler:
            faulthandler.enable(file=2)  # before the reader closes its saved descriptor
        self._stopping = True
        self._poke(b"s")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            if not self._drained.wait(_DRAIN_MAX + 4.0):
                # Blocked writing to a terminal that does not read (^S, a stuck pipe):
                # leave it its descriptors rather than close them under it.
                _warn("polytrack's log reader did not stop; leaving it behind")
                return False
            if not self._lingering:
                thread.join()  # it only closes the pipes now
        return True

    def _poke(self, why: bytes) -> None:
        """Wake the reader: b"s" stop() was called, b"e" the process exits."""
        with self._wake_lock:  # never write to a descriptor the reader closed
            if self._wake is not None:
                with contextlib.suppress(OSError):
                    os.write(self._wake[1], why)

    def _drain_at_exit(self) -> None:
        """At exit, with children still holding the pipes: forward what they wrote so far
        before the reader dies with the process, for at most `_DRAIN_MAX` seconds.

        Registered at start, so that it runs after the run's own exit hook, which
        finishes the run and so stops this capture (hooks run last registered first).
        """
        thread = self._thread
        if thread is None or not thread.is_alive() or not self._lingering:
            return
        self._poke(b"e")
        thread.join(_DRAIN_MAX + 1.0)

    def _read_loop(self) -> None:
        """Forward the pipes to the terminal and record them, until stop() and drained;
        then forward only, for children that outlive the run, until they close the pipes.

        poll(), not select(): a process with over 1,024 open files gets descriptors that
        select() cannot take.
        """
        open_fds = {redirect.read_fd: redirect for redirect in self._redirects}
        poller = select.poll()
        ptys = [redirect for redirect in self._redirects if redirect.pty]
        timeout = _WINSIZE_POLL * 1000 if ptys else None
        assert self._wake is not None
        wake, wake_write = self._wake
        try:
            for fd in (*open_fds, wake):
                poller.register(fd, select.POLLIN)
            while open_fds and not self._stopping:
                for fd, _ in poller.poll(timeout):
                    if fd == wake:
                        os.read(wake, 64)  # stop() sets _stopping before it pokes
                    elif fd in open_fds:
                        self._pump(open_fds, fd, poller)
                for redirect in ptys:
                    with contextlib.suppress(OSError):
                        redirect.follow_winsize()
            poller.unregister(wake)
            self._drain(open_fds, poller)
        except BaseException as exc:
            # Should never happen; if it does, put the terminal back at once, or the
            # program blocks as soon as the pipe is full.
            for redirect in self._redirects:
                with contextlib.suppress(OSError):
                    redirect.restore()
            _warn(f"polytrack stopped capturing stdout and stderr: {exc!r}")
            open_fds.clear()
        finally:
            self._lingering = bool(open_fds)
            self._drained.set()
        try:
            # The run is over and its file closed (stop() does that once _drained is
            # set): what children that outlive the run write goes on to the terminal
            # only. Read it all the same, or they die of EPIPE, or block once the pipe
            # is full (a pool worker holds the read end too).
            if open_fds:
                poller.register(wake, select.POLLIN)
            while open_fds:
                for fd, _ in poller.poll(timeout):
                    if fd != wake:
                        self._pump(open_fds, fd, poller)
                    elif b"e" in os.read(wake, 64):  # the process exits: a last drain
                        poller.unregister(wake)
                        self._drain(open_fds, poller)
                        return
                for redirect in ptys:
                    with contextlib.suppress(OSError):
                        redirect.follow_winsize()
        except Exception:
            pass  # a reader that cannot read: the children get EPIPE, as with no reader
        finally:
            self._fds_closed = True  # first: a fork in between keeps its copies open
            with self._wake_lock:
                self._wake = None
            for fd in (wake, wake_write):
                with contextlib.suppress(OSError):
                    os.close(fd)
            for redirect in self._redirects:
                redirect.close()
            atexit.unregister(self._drain_at_exit)

    def _drain(self, open_fds: dict[int, _Redirect], poller: select.poll) -> None:
        """Read until the pipes are quiet for `_DRAIN_IDLE`, for `_DRAIN_MAX` at most."""
        deadline = time.monotonic() + _DRAIN_MAX
        while open_fds and time.monotonic() < deadline:
            ready = poller.poll(_DRAIN_IDLE * 1000)
            if not ready:
                break  # quiet: a child that still holds the pipe writes nothing
            for fd, _ in ready:
                self._pump(open_fds, fd, poller)

    def _pump(self, open_fds: dict[int, _Redirect], fd: int, poller: select.poll) -> None:
        redirect = open_fds[fd]
        try:
            data = os.read(fd, _READ_SIZE)
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pseudo-terminal whose last writer closed
                raise
            data = b""
        if not data:
            del open_fds[fd]
            poller.unregister(fd)
            return
        redirect.forward(data)
        self._record_bytes(redirect.code, data)


# -- wrap mode's proxies --------------------------------------------------------------------


class _TeeStream:
    """Stands in for sys.stdout or sys.stderr: forwards everything, tees what is written.

    Attribute names are prefixed so that none can shadow the wrapped stream's. Setting an
    attribute sets it here, not on the wrapped stream: IPython patches `sys.stdout.write`
    per cell with a function calling the previous `write`, and forwarding that to the
    wrapped stream would make the two call each other forever.
    """

    _polytrack_target: TextIO
    _polytrack_code: str
    _polytrack_tee: Callable[[str, str], None] | None
    _polytrack_tee_bytes: Callable[[str, bytes], None] | None
    _polytrack_buffer: _TeeBuffer | None

    def __init__(
        self,
        target: TextIO,
        code: str,
        tee: Callable[[str, str], None],
        tee_bytes: Callable[[str, bytes], None],
    ) -> None:
        self._polytrack_target = target
        self._polytrack_code = code
        self._polytrack_tee = tee
        self._polytrack_tee_bytes = tee_bytes
        self._polytrack_buffer = None

    def write(self, text: str) -> Any:
        written = self._polytrack_target.write(text)
        tee = self._polytrack_tee
        if tee is not None and isinstance(text, str):
            tee(self._polytrack_code, text)
        return written

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    @property
    def buffer(self) -> Any:
        target_buffer = self._polytrack_target.buffer
        tee = self._polytrack_tee_bytes
        if tee is None:
            return target_buffer
        cached = self._polytrack_buffer
        if cached is None or cached._polytrack_target is not target_buffer:
            cached = _TeeBuffer(target_buffer, functools.partial(tee, self._polytrack_code))
            self._polytrack_buffer = cached
        return cached

    def _polytrack_detach(self) -> None:
        """Stop teeing; go on forwarding (a handler may hold on to this object)."""
        self._polytrack_tee = None
        self._polytrack_tee_bytes = None
        buffer = self._polytrack_buffer
        if buffer is not None:
            buffer._polytrack_tee = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_polytrack_"):  # copy/pickle probing a bare instance
            raise AttributeError(name)
        return getattr(self._polytrack_target, name)

    def __repr__(self) -> str:
        return f"<polytrack tee of {self._polytrack_target!r}>"


class _TeeBuffer:
    """Stands in for `sys.stdout.buffer`: forwards everything, tees the bytes written."""

    def __init__(self, target: Any, tee: Callable[[bytes], None] | None) -> None:
        self._polytrack_target = target
        self._polytrack_tee = tee

    def write(self, data: Any) -> Any:
        written = self._polytrack_target.write(data)
        tee = self._polytrack_tee
        if tee is not None:
            with contextlib.suppress(Exception):  # e.g. no buffer protocol: not teed
                tee(bytes(data))
        return written

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_polytrack_"):
            raise AttributeError(name)
        return getattr(self._polytrack_target, name)


# -- redirect mode's plumbing ---------------------------------------------------------------


class _Redirect:
    """One descriptor (1 or 2) pointed at a pipe or pseudo-terminal; the saved original."""

    def __init__(self, fd: int, code: str, saved: int, read_fd: int, write_fd: int, pty: bool):
        self.fd = fd
        self.code = code
        self.saved = saved  # a duplicate of the original, not inherited by children
        self.read_fd = read_fd
        self.write_fd: int | None = write_fd
        self.pty = pty
        self.forwarding = True
        self._winsize: bytes | None = None

    @classmethod
    def open(cls, fd: int, code: str) -> _Redirect:
        saved = os.dup(fd)
        try:
            if os.isatty(saved):
                read_fd, write_fd = os.openpty()
                redirect = cls(fd, code, saved, read_fd, write_fd, pty=True)
                with contextlib.suppress(Exception):  # termios.error is no OSError
                    _raw_output(write_fd)
                    redirect.follow_winsize()
                return redirect
            read_fd, write_fd = os.pipe()
        except BaseException:
            os.close(saved)
            raise
        return cls(fd, code, saved, read_fd, write_fd, pty=False)

    def install(self) -> None:
        """Point the descriptor at the pipe; from now on, only it holds the write end."""
        assert self.write_fd is not None
        os.dup2(self.write_fd, self.fd)  # inheritable: subprocesses write into the pipe
        os.close(self.write_fd)
        self.write_fd = None

    def restore(self) -> None:
        os.dup2(self.saved, self.fd)

    def forward(self, data: bytes) -> None:
        """Write `data` to the original descriptor; if that is gone, keep only the log."""
        if not self.forwarding:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(self.saved, view) :]
                except BlockingIOError:  # a non-blocking terminal: wait until it drains
                    poller = select.poll()
                    poller.register(self.saved, select.POLLOUT)
                    poller.poll(1000)
        except OSError:  # EPIPE, EIO: the terminal or the reading end went away
            self.forwarding = False

    def follow_winsize(self) -> None:
        """Give the pseudo-terminal the real terminal's window size, when it changed."""
        import fcntl
        import termios

        size = fcntl.ioctl(self.saved, termios.TIOCGWINSZ, b"\0" * 8)
        if size != self._winsize:
            self._winsize = size
            fcntl.ioctl(self.read_fd, termios.TIOCSWINSZ, size)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd, self.saved):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _raw_output(fd: int) -> None:
    """Turn off output processing (\\n -> \\r\\n): the real terminal does its own."""
    import termios

    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _resolve(mode: str) -> str:
    if mode == "redirect" and os.name != "posix":
        _warn("polytrack can redirect stdout and stderr only on POSIX; wrapping them")
        return "wrap"
    if mode != "auto":
        return mode
    if os.name != "posix":
        return "wrap"
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None or stream is not getattr(sys, f"__{name}__"):
            return "wrap"
        try:
            if stream.fileno() != fd:
                return "wrap"
        except (AttributeError, OSError, ValueError):
            return "wrap"
    return "redirect"


def _flush_python() -> None:
    """Flush Python's buffered text, so it lands on the side of the switch it was written."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()


_libc_fflush: Callable[[Any], Any] | None = None


def _flush_libc() -> None:
    """Flush C stdio buffers (`printf` of extensions), as for Python's own above."""
    global _libc_fflush
    with contextlib.suppress(Exception):  # no libc to speak of: nothing buffered there
        if _libc_fflush is None:
            import ctypes

            _libc_fflush = ctypes.CDLL(None).fflush
        _libc_fflush(None)


def _forked(ref: weakref.ref[LogCapture]) -> None:
    """In a forked child, the parent's capture lets go: the child's fds 1 and 2 (redirect)
    still lead to the parent's reader; its wrap proxies forward without teeing."""
    capture = ref()
    if capture is None:
        return
    if capture._state == "started":
        capture._state = "stopped"
        capture._lock = threading.RLock()
        capture._file = None
        for proxy in capture._proxies.values():
            proxy._polytrack_detach()
    if capture._redirects and not capture._fds_closed:
        # The pipes' read ends are the parent's reader's. A child holding copies would
        # keep its own pipe "read" once the parent is gone, and block forever when it
        # fills, where it should get EPIPE. Its saved terminal stays: faulthandler may
        # write a fatal error's traceback there.
        capture._fds_closed = True
        wake = capture._wake or ()
        for fd in (*(redirect.read_fd for redirect in capture._redirects), *wake):
            with contextlib.suppress(OSError):
                os.close(fd)


# -- lines and the file ---------------------------------------------------------------------


class _Lines:
    """One stream's partial line: splits text into lines, collapsing `\\r` rewrites."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> Sequence[str]:
        """The lines that `text` completes."""
        if "\n" not in text:
            if "\r" not in text and len(self._pending) + len(text) <= _MAX_LINE:
                self._pending += text  # print()'s first write
                return ()
            pending = self._pending + text
            if "\r" in text:
                pending = _last_state(pending)
            if len(pending) <= _MAX_LINE:
                self._pending = pending
                return ()
            self._pending = ""
            return _cut(pending)
        if text == "\n" and "\r" not in self._pending:  # print()'s second write
            line, self._pending = self._pending, ""
            return (line,)
        parts = text.split("\n")
        parts[0] = self._pending + parts[0]
        lines: list[str] = []
        for part in parts[:-1]:
            if "\r" in part:
                part = _last_state(part).rstrip("\r")
            lines.extend(_cut(part) if len(part) > _MAX_LINE else (part,))
        rest = parts[-1]
        if "\r" in rest:
            rest = _last_state(rest)
        if len(rest) > _MAX_LINE:
            lines.extend(_cut(rest))
            rest = ""
        self._pending = rest
        return lines

    def flush(self) -> str | None:
        """The partial line, if any, as a line."""
        pending, self._pending = self._pending, ""
        pending = pending.rstrip("\r")
        return pending or None


def _last_state(text: str) -> str:
    """What a terminal row shows of `text` in the end: the last non-empty `\\r` segment
    (with any `\\r` after it, so that the next write starts a new segment)."""
    start = text.rstrip("\r").rfind("\r")
    return text[start + 1 :]


def _cut(text: str) -> list[str]:
    return [text[i : i + _MAX_LINE] for i in range(0, len(text), _MAX_LINE)] or [""]


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else f"\\x{ord(char):02x}"


def _unescape_char(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    return b"\\" if escaped == b"\\" else bytes([int(escaped[1:], 16)])


class _LogFile:
    """The open log file: formats records, enforces the size cap, fails once and quietly."""

    def __init__(self, fd: int, *, size: int, max_bytes: int, path: Path) -> None:
        self._fd = fd
        self._size = size
        self._max_bytes = max_bytes
        self._path = path
        self.active = True  # false once truncated, failed or closed
        self.error: BaseException | None = None
        self._warned = False
        self._stamp_ms = -1
        self._stamp = b""

    @classmethod
    def open(cls, path: Path, max_bytes: int) -> _LogFile:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return cls(fd, size=os.fstat(fd).st_size, max_bytes=max_bytes, path=path)

    def write(self, t: float, code: str, lines: Sequence[str]) -> None:
        """Append `lines` in one system call (the caller holds the capture's lock)."""
        if not self.active:
            return
        lines = redact_lines(lines)  # a token printed is no more recorded than one logged
        ms = int(t * 1000)
        if ms != self._stamp_ms:  # formatting a float costs more than the rest of a line
            self._stamp_ms = ms
            self._stamp = b"%d.%03d " % divmod(ms, 1000)
        prefix = self._stamp + _CODE_PREFIX[code]
        records = []
        size = self._size
        for line in lines:
            if "\\" in line or not line.isprintable():  # cheaper than the regular expression
                line = _ESCAPE.sub(_escape_char, line)
            record = prefix + line.encode("utf-8", "replace") + b"\n"
            if size + len(record) > self._max_bytes:
                records.append(
                    self._stamp + b"p [polytrack: log truncated after %d bytes]\n" % size
                )
                self.active = False
                break
            records.append(record)
            size += len(record)
        data = records[0] if len(records) == 1 else b"".join(records)
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self.fail(exc)
            return
        self._size = size

    def fail(self, exc: BaseException) -> None:
        self.active = False
        if self.error is None:
            self.error = exc

    def warn_if_failed(self) -> None:
        """Warn about a failed write, once; called outside the lock (the warning prints)."""
        if self.error is not None and not self._warned:
            self._warned = True
            _warn(f"polytrack stopped recording output to {self._path}: {self.error}")

    def close(self) -> None:
        self.active = False
        with contextlib.suppress(OSError):
            os.close(self._fd)


class LogWriter:
    """Appends lines to a run's log file, in `LogCapture`'s format, for output that reaches
    the run some other way than its own stdout: the logs of the Kubernetes pods it runs in.

    Same cap (`max_bytes`) and the same quiet failure: a write that fails warns once with
    `TrackingWarning` and ends the file, never raising. Thread-safe.

    Example:
        >>> with LogWriter.open(run.dir / "output-000.log", max_bytes=1 << 20) as log:
        ...     log.write(["epoch 1: loss 0.5"], t=1700000000.0)
    """

    def __init__(self, file: _LogFile) -> None:
        self._file = file
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, max_bytes: int) -> LogWriter:
        """Open (creating) `path` for appending.

        Raises:
            StoreError: the file cannot be opened.
        """
        try:
            return cls(_LogFile.open(path, max_bytes))
        except OSError as exc:
            raise StoreError(f"cannot open the log file {path}: {exc}") from exc

    def write(
        self, lines: Sequence[str], *, t: float | None = None, stream: str = "stdout"
    ) -> None:
        """Append `lines` (without their newlines), stamped `t` (default: now).

        Args:
            stream: "stdout" or "stderr"; Kubernetes merges a container's two, so pods'
                logs come as stdout.
        """
        code = {"stdout": "o", "stderr": "e"}.get(stream)
        if code is None:
            raise InvalidInputError(f"stream must be stdout or stderr; got {stream!r}")
        pieces = [piece for line in lines for piece in _cut(line)]
        with self._lock:
            self._file.write(time.time() if t is None else t, code, pieces)
        self._file.warn_if_failed()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _warn(message: str) -> None:
    """Warn without ever raising: under `-W error` a warning would break the print()."""
    with contextlib.suppress(Exception):
        warnings.warn(message, TrackingWarning, stacklevel=3)


# -- reading --------------------------------------------------------------------------------


def _parse(raw: bytes) -> LogLine | None:
    parts = raw.split(b" ", 2)
    if len(parts) != 3:
        return None
    stamp, code, text = parts
    stream = STREAMS.get(code.decode("ascii", "replace"))
    if stream is None:
        return None
    try:
        t = float(stamp)
    except ValueError:
        return None
    if b"\\" in text:
        text = _UNESCAPE.sub(_unescape_char, text)
    return LogLine(t=t, stream=stream, text=text.decode("utf-8", "replace"))


def _read_tail(file: Any, lines: int) -> bytes:
    """The end of `file` holding at least `lines` complete lines (or all of it)."""
    end = file.seek(0, os.SEEK_END)
    block = 64 * 1024
    while True:
        start = max(0, end - block)
        file.seek(start)
        data: bytes = file.read(end - start)
        if start == 0 or data.count(b"\n") > lines:
            if start > 0:  # the first line is likely cut: drop it
                data = data[data.index(b"\n") + 1 :]
            return data
        block *= 4
