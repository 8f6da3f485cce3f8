"""Git capture: HEAD read from files, status and diff from real git, on real repositories."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from polytrack.capture.git import (
    GIT_NOT_FOUND,
    NOT_A_REPOSITORY,
    GitCapture,
    capture_git,
    read_head,
)
from polytrack.redact import REDACTED

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary"),
    pytest.mark.skipif(sys.platform == "win32", reason="status and diff are POSIX-only"),
]

# -- helpers: real repositories, built with the git binary and no user configuration -----


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment for git that ignores the user's and the system's configuration."""
    home = tmp_path / "git-home"
    home.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "LC_ALL": "C",
    }


def git(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def init_repo(env: dict[str, str], path: Path) -> Path:
    path.mkdir(parents=True)
    git(env, path, "init", "-q")
    git(env, path, "symbolic-ref", "HEAD", "refs/heads/main")  # whatever the git version
    return path


@pytest.fixture
def repo(env: dict[str, str], tmp_path: Path) -> Path:
    """A repository with one commit on `main`: two text files and a binary one."""
    path = init_repo(env, tmp_path / "repo")
    (path / "train.py").write_text("".join(f"line {i}\n" for i in range(50)))
    (path / "src").mkdir()
    (path / "src" / "model.py").write_text("class Model:\n    pass\n")
    (path / "weights.bin").write_bytes(bytes(range(256)) * 8)
    git(env, path, "add", "-A")
    git(env, path, "commit", "-q", "-m", "first")
    return path


def capture(
    path: Path,
    env: dict[str, str],
    *,
    timeout: float = 10.0,
    max_diff_bytes: int = 1 << 20,
    max_untracked: int = 100,
    git: str | None = "git",
) -> GitCapture:
    return capture_git(
        path,
        timeout=timeout,
        max_diff_bytes=max_diff_bytes,
        max_untracked=max_untracked,
        git=git,
        environ=env,
    )


def fake_git(tmp_path: Path, script: str) -> dict[str, str]:
    """PATH with a `git` shell script in front of the real one."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def applied(env: dict[str, str], repo: Path, commit: str | None, patch: bytes, to: Path) -> Path:
    """A fresh clone of `repo` at `commit` (or an empty repository) with `patch` applied."""
    if commit is None:
        init_repo(env, to)
    else:
        git(env, repo.parent, "clone", "-q", str(repo), str(to))
        git(env, to, "checkout", "-q", "--detach", commit)
    (to.parent / "patch.diff").write_bytes(patch)
    git(env, to, "apply", "--whitespace=nowarn", str(to.parent / "patch.diff"))
    return to


# -- read_head ----------------------------------------------------------------------------


def test_clean_repo(repo: Path, env: dict[str, str]) -> None:
    """A clean repository: commit and branch from HEAD, not dirty, no diff, nothing partial."""
    head = read_head(repo)
    assert head.available and head.reason is None
    assert head.root == os.path.realpath(repo)
    assert head.commit == git(env, repo, "rev-parse", "HEAD")
    assert head.branch == "main"
    assert head.remote is None
    assert head.partial and head.dirty is None

    captured = capture(repo, env)
    assert captured.diff == b""
    state = captured.state
    assert (state.commit, state.branch, state.root) == (head.commit, "main", head.root)
    assert state.dirty is False and state.reason is None and not state.partial
    assert state.untracked == () and state.diff_bytes == 0 and not state.diff_truncated


def test_read_head_from_a_subdirectory_or_a_file(repo: Path) -> None:
    """Any path inside the working tree, directory or file, finds the repository's root."""
    assert read_head(repo / "src").root == os.path.realpath(repo)
    assert read_head(repo / "src" / "model.py").root == os.path.realpath(repo)


def test_not_a_repository(tmp_path: Path, env: dict[str, str]) -> None:
    """Outside a repository both stages say so, and run no git."""
    plain = tmp_path / "plain"
    plain.mkdir()
    assert read_head(plain).available is False
    assert read_head(plain).reason == NOT_A_REPOSITORY
    captured = capture(plain, env, git="/nonexistent/git")
    assert captured.state.available is False and captured.state.reason == NOT_A_REPOSITORY
    assert captured.diff == b""


def test_detached_head(repo: Path, env: dict[str, str]) -> None:
    """A detached HEAD has a commit and no branch."""
    commit = git(env, repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("second\n")
    git(env, repo, "commit", "-q", "-am", "second")
    git(env, repo, "checkout", "-q", "--detach", commit)
    head = read_head(repo)
    assert (head.commit, head.branch) == (commit, None)
    state = capture(repo, env).state
    assert (state.commit, state.branch, state.dirty) == (commit, None, False)


def test_packed_refs(repo: Path, env: dict[str, str]) -> None:
    """After `git pack-refs --all` the commit is read from packed-refs."""
    commit = git(env, repo, "rev-parse", "HEAD")
    git(env, repo, "branch", "other")
    git(env, repo, "tag", "v1")
    git(env, repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    head = read_head(repo)
    assert (head.commit, head.branch) == (commit, "main")


def test_symbolic_branch_ref(repo: Path, env: dict[str, str]) -> None:
    """HEAD naming a symbolic ref is followed to the commit of the branch it points to."""
    git(env, repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    git(env, repo, "symbolic-ref", "HEAD", "refs/heads/alias")
    head = read_head(repo)
    assert (head.commit, head.branch) == (git(env, repo, "rev-parse", "main"), "alias")


def test_unborn_branch(tmp_path: Path, env: dict[str, str]) -> None:
    """No commit yet: the branch is known, commit None; staged files form the diff."""
    repo = init_repo(env, tmp_path / "new")
    head = read_head(repo)
    assert head.available and (head.commit, head.branch) == (None, "main")
    assert head.reason is None

    (repo / "a.txt").write_text("hello\n")
    (repo / "b.bin").write_bytes(b"\0\1\2" * 100)
    git(env, repo, "add", "a.txt", "b.bin")
    (repo / "a.txt").write_text("hello\nworld\n")  # an unstaged change on top
    (repo / "notes.txt").write_text("untracked\n")
    captured = capture(repo, env)
    state = captured.state
    assert (state.commit, state.branch, state.dirty) == (None, "main", True)
    assert state.reason is None and state.untracked == ("notes.txt",)
    clone = applied(env, repo, None, captured.diff, tmp_path / "rebuilt")
    assert (clone / "a.txt").read_bytes() == b"hello\nworld\n"
    assert (clone / "b.bin").read_bytes() == b"\0\1\2" * 100
    assert not (clone / "notes.txt").exists()


def test_sha256_repository(tmp_path: Path, env: dict[str, str]) -> None:
    """A SHA-256 repository: 64-digit commits, and the unborn diff against its empty tree."""
    repo = tmp_path / "sha256"
    repo.mkdir()
    try:
        git(env, repo, "init", "-q", "--object-format=sha256")
    except subprocess.CalledProcessError:
        pytest.skip("this git cannot create SHA-256 repositories")
    (repo / "a.txt").write_text("a\n")
    git(env, repo, "add", "a.txt")
    assert capture(repo, env).state.dirty is True
    assert capture(repo, env).state.reason is None
    git(env, repo, "commit", "-q", "-m", "first")
    assert read_head(repo).commit == git(env, repo, "rev-parse", "HEAD")
    assert len(read_head(repo).commit or "") == 64


def test_worktree(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """A linked worktree (`.git` file + commondir): its own root, branch and changes."""
    git(env, repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"))
    worktree = tmp_path / "wt"
    assert (worktree / ".git").is_file()
    git(env, repo, "pack-refs", "--all")  # the branch now lives in the common packed-refs
    git(env, repo, "remote", "add", "origin", "https://example.com/team/repo.git")
    head = read_head(worktree / "src")
    assert head.root == os.path.realpath(worktree)
    assert (head.branch, head.commit) == ("feature", git(env, repo, "rev-parse", "HEAD"))
    assert head.remote == "https://example.com/team/repo.git"

    (worktree / "train.py").write_text("changed in the worktree\n")
    captured = capture(worktree, env)
    assert captured.state.dirty is True and b"changed in the worktree" in captured.diff
    assert capture(repo, env).state.dirty is False


def test_separate_git_dir(tmp_path: Path, env: dict[str, str]) -> None:
    """A `.git` file pointing elsewhere (submodules, --separate-git-dir) is followed."""
    work = tmp_path / "work"
    work.mkdir()
    git(env, work, "init", "-q", f"--separate-git-dir={tmp_path / 'store.git'}")
    git(env, work, "symbolic-ref", "HEAD", "refs/heads/main")
    (work / "f.txt").write_text("x\n")
    git(env, work, "add", "f.txt")
    git(env, work, "commit", "-q", "-m", "c")
    head = read_head(work)
    assert head.root == os.path.realpath(work)
    assert (head.branch, head.commit) == ("main", git(env, work, "rev-parse", "HEAD"))


def test_broken_git_file(tmp_path: Path) -> None:
    """A `.git` file pointing nowhere is not a repository, and does not raise."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".git").write_text("gitdir: ../gone\n")
    state = read_head(work)
    assert state.available is False
    assert state.reason is not None and state.reason.startswith(NOT_A_REPOSITORY)


def test_read_head_is_fast(repo: Path) -> None:
    """read_head takes well under the 5 ms it is allowed inline in init()."""
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        read_head(repo / "src")
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.005


# -- remotes ------------------------------------------------------------------------------


def test_no_remote(repo: Path) -> None:
    """A repository without remotes records none."""
    assert read_head(repo).remote is None


@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        (
            "https://alice:s3cret-token@github.com/o/r.git",
            f"https://alice:{REDACTED}@github.com/o/r.git",
        ),
        (
            "https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git",
            f"https://{REDACTED}@github.com/o/r.git",
        ),
        (
            "https://oauth2:glpat-xyz@gitlab.com/o/r.git",
            f"https://oauth2:{REDACTED}@gitlab.com/o/r.git",
        ),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("ssh://git@host.example/org/repo", "ssh://git@host.example/org/repo"),
    ],
)
def test_remote_credentials_are_stripped(
    repo: Path, env: dict[str, str], url: str, recorded: str
) -> None:
    """Credentials in the remote URL are never recorded; scp-like and ssh URLs are kept."""
    git(env, repo, "remote", "add", "origin", url)
    assert read_head(repo).remote == recorded
    assert "s3cret" not in repr(capture(repo, env).state)


def test_origin_wins_else_the_first_remote(repo: Path, env: dict[str, str]) -> None:
    """`origin` is the remote recorded; without it, the first one in the config."""
    git(env, repo, "remote", "add", "upstream", "https://example.com/upstream.git")
    git(env, repo, "remote", "add", "fork", "https://example.com/fork.git")
    assert read_head(repo).remote == "https://example.com/upstream.git"
    git(env, repo, "remote", "add", "origin", "https://example.com/origin.git")
    assert read_head(repo).remote == "https://example.com/origin.git"


def test_hand_written_config(repo: Path) -> None:
    """Config quirks: case, comments, quotes, escapes, a key on the header line."""
    with open(repo / ".git" / "config", "a") as config:
        config.write(
            "; a comment\n"
            '[Remote "Other"]\n\turl = https://example.com/other.git\n'
            '[REMOTE "origin"] URL = "https://example.com/my repo.git" ; trailing comment\n'
            "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
        )
    assert read_head(repo).remote == "https://example.com/my repo.git"


# -- status and diff ----------------------------------------------------------------------


def test_dirty_repo_diff_reproduces_the_tree(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """The diff of a dirty tree, applied to a fresh clone, reproduces every tracked file."""
    commit = git(env, repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("".join(f"line {i * 2}\n" for i in range(60)))
    weights = bytes(reversed(range(256))) * 8 + b"\0tail"
    (repo / "weights.bin").write_bytes(weights)
    (repo / "src" / "model.py").unlink()
    (repo / "staged.txt").write_text("staged, never committed\n")
    git(env, repo, "add", "staged.txt")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    git(env, repo, "add", "run.sh")
    (repo / "run.sh").chmod(0o755)
    (repo / "scratch.txt").write_text("untracked\n")

    captured = capture(repo, env)
    state = captured.state
    assert state.dirty is True and state.reason is None and not state.partial
    assert state.diff_bytes == len(captured.diff) and not state.diff_truncated
    assert state.diff_file is None
    assert state.untracked == ("scratch.txt",)
    assert b"GIT binary patch" in captured.diff

    clone = applied(env, repo, commit, captured.diff, tmp_path / "clone")
    for name in ("train.py", "weights.bin", "staged.txt", "run.sh"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes(), name
    assert not (clone / "src" / "model.py").exists()
    assert not (clone / "scratch.txt").exists()
    assert os.access(clone / "run.sh", os.X_OK)


def test_user_diff_settings_do_not_change_the_patch(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """Colour, no prefixes, external diff or renames set in the config: the patch still applies."""
    commit = git(env, repo, "rev-parse", "HEAD")
    for key, value in [
        ("color.ui", "always"),
        ("color.diff", "always"),
        ("diff.noprefix", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("diff.renames", "copies"),
        ("diff.external", "/bin/false"),
        ("diff.submodule", "log"),
        ("core.pager", "/bin/false"),
    ]:
        git(env, repo, "config", key, value)
    git(env, repo, "mv", "train.py", "renamed.py")
    (repo / "src" / "model.py").write_text("class Model:\n    layers = 3\n")
    captured = capture(repo, env)
    assert captured.state.reason is None and b"\x1b[" not in captured.diff
    clone = applied(env, repo, commit, captured.diff, tmp_path / "clone")
    assert (clone / "renamed.py").read_bytes() == (repo / "renamed.py").read_bytes()
    assert (clone / "src" / "model.py").read_bytes() == (repo / "src" / "model.py").read_bytes()


def test_untracked_files_are_listed_and_capped(repo: Path, env: dict[str, str]) -> None:
    """Untracked files are listed as git status shows them, capped, and never make it dirty."""
    (repo / ".gitignore").write_text("*.log\n")
    git(env, repo, "add", ".gitignore")
    git(env, repo, "commit", "-q", "-m", "ignore logs")
    (repo / "b.txt").write_text("b")
    (repo / "a.txt").write_text("a")
    (repo / "ignored.log").write_text("log")
    (repo / "data").mkdir()
    for name in ("x.csv", "y.csv"):
        (repo / "data" / name).write_text("1,2\n")
    (repo / "src" / "new.py").write_text("")
    (repo / "ünïcode name.txt").write_text("")
    (repo / "empty").mkdir()

    state = capture(repo, env).state
    assert state.untracked == ("a.txt", "b.txt", "data/", "src/new.py", "ünïcode name.txt")
    assert state.untracked_truncated is False and state.dirty is False

    capped = capture(repo, env, max_untracked=2).state
    assert capped.untracked == ("a.txt", "b.txt") and capped.untracked_truncated
    assert capped.dirty is False and capped.reason is None and not capped.partial
    none = capture(repo, env, max_untracked=0).state
    assert none.untracked == () and none.untracked_truncated


def test_diff_over_the_cap_is_cut_at_a_file(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A diff over the cap keeps whole files under it, applicable; diff_bytes is the full size."""
    commit = git(env, repo, "rev-parse", "HEAD")
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text("")
    git(env, repo, "add", "-A")
    git(env, repo, "commit", "-q", "-m", "three files")
    commit = git(env, repo, "rev-parse", "HEAD")
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text("".join(f"{name} {i}\n" for i in range(200)))
    full = capture(repo, env).diff
    assert len(full) > 5000

    captured = capture(repo, env, max_diff_bytes=5000)
    state = captured.state
    assert state.diff_truncated and state.dirty is True and state.diff_bytes == len(full)
    assert 0 < len(captured.diff) <= 5000 and full.startswith(captured.diff)
    clone = applied(env, repo, commit, captured.diff, tmp_path / "clone")
    assert (clone / "a.txt").read_bytes() == (repo / "a.txt").read_bytes()
    assert (clone / "c.txt").read_bytes() == b""

    tiny = capture(repo, env, max_diff_bytes=10).state  # not even one file fits
    assert tiny.diff_truncated and tiny.dirty is True and tiny.diff_bytes == len(full)


def test_big_diff_memory_stays_bounded(repo: Path, env: dict[str, str]) -> None:
    """A diff of several MB is streamed: memory peaks at the cap plus one read, not the diff."""
    (repo / "train.py").write_text(
        "".join(f"a longer line of training code {i}\n" for i in range(200_000))
    )
    cap = 64 * 1024
    tracemalloc.start()
    try:
        captured = capture(repo, env, max_diff_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert captured.state.diff_bytes > 6_000_000 and captured.state.diff_truncated
    assert len(captured.diff) <= cap
    assert peak < cap + 2 * (1 << 20) + 512 * 1024, peak


def test_git_environment_of_the_caller_is_ignored(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """GIT_DIR / GIT_INDEX_FILE in the environment (a git hook's) do not redirect the capture."""
    other = init_repo(env, tmp_path / "other")
    (repo / "train.py").write_text("changed\n")
    state = capture(
        repo,
        {**env, "GIT_DIR": str(other / ".git"), "GIT_INDEX_FILE": str(other / ".git" / "index")},
    ).state
    assert state.dirty is True and state.reason is None


def test_index_is_not_locked_or_rewritten(repo: Path, env: dict[str, str]) -> None:
    """Capturing takes no index lock and leaves the index file as it was."""
    (repo / "train.py").write_text("changed\n")
    os.utime(repo / "src" / "model.py")  # stat-dirty: git would refresh the index if allowed
    index = repo / ".git" / "index"
    before = index.read_bytes(), index.stat().st_mtime_ns
    (repo / ".git" / "index.lock").write_text("")  # a concurrent git holds the lock
    try:
        state = capture(repo, env).state
    finally:
        (repo / ".git" / "index.lock").unlink()
    assert state.dirty is True and state.reason is None
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before


# -- no git, failing git, slow git --------------------------------------------------------


def test_no_git_binary(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Without git, commit and branch are still read; dirty stays unknown and says why."""
    commit = git(env, repo, "rev-parse", "HEAD")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    for captured in (
        capture(repo, env, git=None),
        capture(repo, {**env, "PATH": str(empty)}),
    ):
        state = captured.state
        assert state.available and (state.commit, state.branch) == (commit, "main")
        assert state.dirty is None and state.reason == GIT_NOT_FOUND
        assert not state.partial and captured.diff == b""


def test_git_failure_is_recorded(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """A git that fails leaves its message as the reason, once, and nothing raises."""
    path = fake_git(tmp_path, 'echo "fatal: something broke" >&2\nexit 128\n')
    state = capture(repo, {**env, **path}).state
    assert state.reason == "git diff and ls-files failed: something broke"
    assert state.dirty is None and state.commit == read_head(repo).commit
    assert not state.partial


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_repository_of_another_user(repo: Path, env: dict[str, str]) -> None:
    """git refusing a repository of another user (safe.directory) is a reason, not an error."""
    for root, dirs, files in os.walk(repo):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), 65534, 65534)
    os.lchown(repo, 65534, 65534)
    state = capture(repo, env).state
    assert state.available and state.commit == read_head(repo).commit
    assert state.dirty is None
    assert state.reason is not None and "dubious ownership" in state.reason


def test_timeout_kills_git_and_returns_partial(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """Git slower than the deadline is killed and reaped; the state is partial and says why."""
    pids = tmp_path / "pids"
    path = fake_git(tmp_path, f'echo $$ >> "{pids}"\nexec sleep 30\n')
    started = time.monotonic()
    state = capture(repo, {**env, **path}, timeout=0.3).state
    assert time.monotonic() - started < 5
    assert state.partial and state.dirty is None and state.commit == read_head(repo).commit
    assert state.reason == "git diff timed out after 0.3 s; git ls-files timed out after 0.3 s"
    for pid in pids.read_text().split():
        with pytest.raises(ProcessLookupError):  # killed and reaped: no zombie either
            os.kill(int(pid), 0)


def test_timeout_after_part_of_the_diff(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """A diff cut by the deadline keeps its whole files and still tells the tree is dirty."""
    first = "diff --git a/x b/x\\n--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-a\\n+b\\n"
    script = (
        f'case "$*" in *" diff "*) printf "{first}diff --git a/y b/y\\n--- a/y\\n";; esac\n'
        "exec sleep 30\n"
    )
    captured = capture(repo, {**env, **fake_git(tmp_path, script)}, timeout=0.3)
    state = captured.state
    assert captured.diff == first.replace("\\n", "\n").encode()
    assert state.partial and state.dirty is True and state.diff_truncated
    assert state.diff_bytes == len(captured.diff)
    assert state.reason is not None and "git diff timed out" in state.reason


def test_real_git_with_a_tiny_deadline(repo: Path, env: dict[str, str]) -> None:
    """A deadline too short for real git gives a partial state, never an exception."""
    (repo / "train.py").write_text("changed\n")
    state = capture(repo, env, timeout=0.0).state
    assert state.partial and state.commit == read_head(repo).commit
    assert state.reason is not None and "timed out" in state.reason
