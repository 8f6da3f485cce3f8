"""What was run: the entrypoint or notebook, its arguments (secrets redacted), where."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

from polytrack.capture.notebook import notebook_path
from polytrack.models import CodeState
from polytrack.redact import redact_argv

__all__ = ["capture_code", "notebook_path"]


def capture_code(
    *,
    argv: Sequence[str] | None = None,
    main: ModuleType | None = None,
    environ: Mapping[str, str] | None = None,
) -> CodeState:
    """The entrypoint, argv and working directory of this process.

    Args:
        argv: default `sys.argv`.
        main: the `__main__` module (default `sys.modules["__main__"]`): `python -m pkg`
            is recorded as the entrypoint "-m pkg".
        environ: default `os.environ`; read for the notebook's path.
    """
    argv = list(sys.argv if argv is None else argv)
    main = sys.modules.get("__main__") if main is None else main
    environ = os.environ if environ is None else environ
    notebook = notebook_path(environ)
    return CodeState(
        argv=tuple(redact_argv(argv)),
        cwd=os.getcwd(),
        executable=sys.executable,
        entrypoint=None if notebook else _entrypoint(argv, main),
        notebook=notebook,
    )


def _entrypoint(argv: list[str], main: ModuleType | None) -> str | None:
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", None) not in (None, "__main__"):
        name = str(spec.name)
        # `python -m pkg` runs pkg.__main__: the user typed "pkg".
        return f"-m {name.removesuffix('.__main__')}"
    script = getattr(main, "__file__", None) or (argv[0] if argv else None)
    if not script or script in ("-c", "-"):
        return None  # an interactive interpreter or `python -c`
    return os.path.abspath(script)
