"""Default run names: `adjective-noun-N`, N counting up within a project."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polytrack
from polytrack._names import default_name

NAME = re.compile(r"[a-z]+-[a-z]+-(\d+)")


def test_an_unnamed_run_gets_a_memorable_name_that_counts_up(home: Path) -> None:
    numbers = []
    for _ in range(3):
        with polytrack.init(project="p", dir=home, capture=False) as run:
            match = NAME.fullmatch(run.name)
            assert match, run.name
            numbers.append(int(match.group(1)))
    with polytrack.init(project="other", dir=home, capture=False) as other:
        assert other.name.endswith("-1")
    assert numbers == [1, 2, 3]
    assert polytrack.runs(project="p", home=home)[0].name.endswith("-3")


def test_a_given_name_is_kept_and_uses_no_number(home: Path) -> None:
    with polytrack.init(project="p", name="mine", dir=home, capture=False) as run:
        assert run.name == "mine"
    assert default_name(home, "p", "abcdef12").endswith("-1")


def test_names_are_unique_when_many_start_at_once(home: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda i: default_name(home, "p", f"id{i}"), range(64)))
    numbers = sorted(int(NAME.fullmatch(name).group(1)) for name in names)  # type: ignore[union-attr]
    assert numbers == list(range(1, 65))


def test_an_unusable_counter_falls_back_to_the_run_id(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "counters").write_text("not a folder")
    assert default_name(home, "p", "abcdef12").endswith("-abcdef")
