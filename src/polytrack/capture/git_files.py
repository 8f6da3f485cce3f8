"""Reading a git repository's own files: its root, HEAD, refs and remote, no subprocess.

`read_head` is what `init()` can afford inline (well under a millisecond; no git
binary needed, and no gitpython, whose import alone costs ~100 ms). What only git
itself can tell, the diff and the untracked files, is `polytrack.capture.git`'s.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Final

from attrs import evolve, frozen

from polytrack.models import GitState
from polytrack.redact import redact_remote

__all__ = ["NOT_A_REPOSITORY", "Head", "read_head", "read_head_details"]

NOT_A_REPOSITORY: Final = "not a git repository"

_HASH: Final = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Refs that live in a worktree's own git directory, not in the common one (git-worktree(1)).
_PER_WORKTREE_REFS: Final = ("refs/bisect/", "refs/worktree/", "refs/rewritten/")
_MAX_SYMREF_DEPTH: Final = 5


@frozen
class Head:
    """What `read_head` found, with what `capture_git` needs to choose the diff's base."""

    state: GitState
    unborn: bool = False  # HEAD names a branch without commits: diff against the empty tree
    object_format: str = "sha1"


def read_head(path: Path) -> GitState:
    """The repository around `path`, read from its files: root, commit, branch, remote.

    Fast enough to call inline in `init()` (under a millisecond): no subprocess. Handles
    `.git` directories and `.git` files (worktrees, submodules), loose and packed refs,
    detached HEADs and unborn branches. The remote is `origin`'s URL, else the first
    remote's, without credentials. Status and diff are unknown here: `dirty` is None and
    `partial` True until `capture_git` completes the record.

    Args:
        path: a directory (or file) inside the working tree.

    Returns:
        `GitState(available=False, reason="not a git repository")` outside a repository.
        Never raises for any state of the repository.

    Example:
        >>> read_head(Path("/")).reason
        'not a git repository'
    """
    return read_head_details(path).state


# -- reading the repository's files -------------------------------------------------------


def read_head_details(path: Path) -> Head:
    """`read_head`, with what `capture_git` needs to choose the base of its diff."""
    try:
        found = _discover(os.path.realpath(path))
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        return Head(GitState(available=False, reason=f"{NOT_A_REPOSITORY}: {exc}"))
    if isinstance(found, str):
        return Head(GitState(available=False, reason=found))
    root, git_dir, common_dir = found
    config = _parse_config(_read_bytes(os.path.join(common_dir, "config")) or b"")
    object_format = config.get(("extensions", "", "objectformat"), ["sha1"])[0].lower()
    state = GitState(available=True, root=root, remote=_remote(config), partial=True)
    head = (_read_bytes(os.path.join(git_dir, "HEAD")) or b"").decode("utf-8", "replace").strip()
    if not head.startswith("ref:"):
        if _HASH.fullmatch(head):  # detached
            return Head(evolve(state, commit=head), object_format=object_format)
        return Head(
            evolve(state, reason=f"unreadable HEAD: {head[:80]!r}"), object_format=object_format
        )
    ref = head[4:].strip()
    if config.get(("extensions", "", "refstorage"), ["files"])[0].lower() != "files":
        # Refs in a reftable (git >= 2.45): a binary format not worth parsing here.
        return Head(
            evolve(state, reason="refs are in a reftable; commit and branch not read"),
            object_format=object_format,
        )
    branch = ref.removeprefix("refs/heads/")
    commit, broken = _resolve(ref, git_dir, common_dir)
    if commit is None and broken:
        return Head(
            evolve(state, branch=branch, reason=f"cannot resolve {ref}"),
            object_format=object_format,
        )
    return Head(
        evolve(state, branch=branch, commit=commit),
        unborn=commit is None,
        object_format=object_format,
    )


def _discover(start: str) -> tuple[str, str, str] | str:
    """(root, git dir, common dir) of the repository holding `start`, else why not.

    Like git's discovery: the first directory upward with a `.git` directory that holds a
    HEAD, or a `.git` file (`gitdir: ...`, written for worktrees and submodules).
    """
    current = start
    while True:
        dot_git = os.path.join(current, ".git")
        try:
            mode = os.stat(dot_git).st_mode
        except OSError:  # absent, or `current` is a file
            mode = 0
        git_dir: str | None = None
        if stat.S_ISDIR(mode):
            git_dir = dot_git
        elif stat.S_ISREG(mode):
            content = (_read_bytes(dot_git) or b"").strip()
            if not content.startswith(b"gitdir:"):
                return f"{NOT_A_REPOSITORY}: invalid .git file {dot_git}"
            git_dir = os.path.join(current, os.fsdecode(content[7:].strip()))
            if not os.path.isfile(os.path.join(git_dir, "HEAD")):
                return (
                    f"{NOT_A_REPOSITORY}: {dot_git} points to {git_dir}, which is no git directory"
                )
        if git_dir is not None and os.path.isfile(os.path.join(git_dir, "HEAD")):
            common = _read_bytes(os.path.join(git_dir, "commondir"))
            common_dir = os.path.join(git_dir, os.fsdecode(common.strip())) if common else git_dir
            return current, os.path.normpath(git_dir), os.path.normpath(common_dir)
        parent = os.path.dirname(current)
        if parent == current:
            return NOT_A_REPOSITORY
        current = parent


def _resolve(ref: str, git_dir: str, common_dir: str) -> tuple[str | None, bool]:
    """(commit, broken): the commit `ref` points to, from loose refs, then packed-refs.

    (None, False) for a ref that does not exist (an unborn branch); (None, True) for one
    that exists but cannot be followed.
    """
    for _ in range(_MAX_SYMREF_DEPTH):
        directory = git_dir if ref.startswith(_PER_WORKTREE_REFS) else common_dir
        loose = _read_bytes(os.path.join(directory, *ref.split("/")))
        if loose is not None:
            value = loose.decode("ascii", "replace").strip()
            if value.startswith("ref:"):
                ref = value[4:].strip()
                continue
            return (value, False) if _HASH.fullmatch(value) else (None, True)
        packed = _read_bytes(os.path.join(common_dir, "packed-refs"))
        return (_packed(packed, ref), False) if packed else (None, False)
    return None, True


def _packed(data: bytes, ref: str) -> str | None:
    # One find instead of splitting lines: packed-refs of repositories with many tags
    # run to megabytes. Ref names hold no spaces, so " <ref>\n" matches one whole line.
    if not data.endswith(b"\n"):
        data += b"\n"
    at = data.find(b" " + ref.encode("utf-8", "surrogateescape") + b"\n")
    if at < 0:
        return None
    value = data[data.rfind(b"\n", 0, at) + 1 : at].decode("ascii", "replace")
    return value if _HASH.fullmatch(value) else None


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except (OSError, ValueError):
        return None


# -- .git/config: only what read_head needs -----------------------------------------------

_SECTION: Final = re.compile(r'\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\](.*)')
_KEY: Final = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=(.*))?$")
_ESCAPES: Final = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}
_Config = dict[tuple[str, str, str], list[str]]


def _parse_config(data: bytes) -> _Config:
    """(section, subsection, key) -> values, in file order, of a git config file.

    Section and key names are lowercased (git compares them so), subsections kept as
    written. Values are unquoted and unescaped; comments and continuation lines handled.
    `include` directives are not followed.
    """
    config: _Config = {}
    section = subsection = ""
    lines = data.decode("utf-8", "replace").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        header = _SECTION.match(line)
        if header:
            name, quoted, line = header.groups()
            if quoted is not None:
                section, subsection = name.lower(), re.sub(r"\\(.)", r"\1", quoted)
            else:  # [section] or the old [section.subsection]
                section, _, subsection = name.partition(".")
                section, subsection = section.lower(), subsection.lower()
            if not line.strip() or line.lstrip()[0] in "#;":
                continue
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        entry = _KEY.match(line)
        if entry is None:
            continue
        raw = entry.group(2)
        if raw is None:  # `key` alone is boolean true
            value = "true"
        else:
            while raw.endswith("\\") and not raw.endswith("\\\\") and i < len(lines):
                raw = raw[:-1] + lines[i]
                i += 1
            value = _unquote(raw)
        config.setdefault((section, subsection, entry.group(1).lower()), []).append(value)
    return config


def _unquote(raw: str) -> str:
    out: list[str] = []
    quoted = False
    pending = ""  # whitespace kept only when followed by more value (git trims the ends)
    chars = iter(raw)
    for char in chars:
        if char == '"':
            quoted = not quoted
            out.append(pending)
            pending = ""
        elif char == "\\":
            out.append(pending + _ESCAPES.get(next(chars, ""), ""))
            pending = ""
        elif not quoted and char in "#;":
            break
        elif not quoted and char.isspace():
            if out:
                pending += char
        else:
            out.append(pending + char)
            pending = ""
    return "".join(out)


def _remote(config: _Config) -> str | None:
    urls = {
        sub: values[0]
        for (sec, sub, key), values in config.items()
        if sec == "remote" and key == "url"
    }
    url = urls.get("origin") or next(iter(urls.values()), None)
    return redact_remote(url) if url else None
