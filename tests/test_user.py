"""Who ran a run: recorded at init, shown by `runs ls`/`runs show`, queryable."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import polytrack
from polytrack import cli
from polytrack.errors import InvalidInputError
from polytrack.settings import Settings, login_name


def _user_of(home: Path, **kwargs: object) -> str | None:
    with polytrack.init(dir=home, capture=False, **kwargs) as run:  # type: ignore[arg-type]
        pass
    return polytrack.get_run(run.id, home=home).user


def test_the_login_name_is_recorded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ana")
    monkeypatch.delenv("POLYTRACK_USER", raising=False)
    assert _user_of(home) == "ana"


def test_polytrack_user_and_init_user_override_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "ana")
    monkeypatch.setenv("POLYTRACK_USER", "ci-bot")
    assert _user_of(home) == "ci-bot"
    assert _user_of(home, user="bo") == "bo"


def test_login_name_falls_back_to_the_password_database() -> None:
    """As getpass.getuser() does, where no variable names the user (a bare container)."""
    import os
    import pwd

    try:
        expected: str | None = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no account: nothing names the user
        expected = None
    assert login_name({"HOME": "/x"}) == expected
    assert login_name({"USERNAME": "dee", "USER": "cy"}) == "cy"  # getpass's order
    assert Settings.from_env({"POLYTRACK_HOME": "/x", "USER": "cy"}).user == "cy"


@pytest.mark.parametrize("bad", ["", " ", "\udc80", 5])
def test_a_bad_user_is_refused(home: Path, bad: object) -> None:
    with pytest.raises(InvalidInputError, match="user"):
        polytrack.init(dir=home, capture=False, user=bad)  # type: ignore[arg-type]
    assert polytrack.current_run() is None


def test_runs_ls_show_and_where_know_the_user(home: Path) -> None:
    """A column where several people ran the listed runs; `runs show` always; `--where`."""
    ana = _user_of(home, user="ana", name="by-ana")
    _user_of(home, user="bo", name="by-bo")
    assert ana == "ana"
    assert [run.name for run in polytrack.runs(home=home, where="user = 'ana'")] == ["by-ana"]

    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "ls"], stdout=out) == 0
    header, *rows = out.getvalue().splitlines()
    assert header.split()[:4] == ["id", "name", "project", "user"]
    assert {row.split()[1]: row.split()[3] for row in rows} == {"by-ana": "ana", "by-bo": "bo"}

    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "show", "by-bo"], stdout=out) == 0
    assert any(line.split() == ["user", "bo"] for line in out.getvalue().splitlines())


def test_one_users_runs_need_no_user_column(home: Path) -> None:
    _user_of(home, user="ana")
    _user_of(home, user="ana")
    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "ls"], stdout=out) == 0
    assert "user" not in out.getvalue().splitlines()[0].split()
    out = io.StringIO()
    assert cli.main(["--home", str(home), "runs", "ls", "--columns", "id,user"], stdout=out) == 0
    assert out.getvalue().splitlines()[1].split()[1] == "ana"
