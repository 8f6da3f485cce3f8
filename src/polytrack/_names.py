"""Memorable default run names: `adjective-noun-N`, e.g. `brave-otter-3`.

The words are drawn at random; `N` counts the project's unnamed runs, so a name is unique
within its project however the words fall. The count lives in one small file per project
under the home (`counters/<hash of the project>`), read and written under an exclusive
`flock`: parallel `init()`s (ranks, a sweep) take turns for a few microseconds and never
get the same N. That is one open, one lock, a read and a write: no scan of the store on
`init()`'s path. Where the file cannot be used (a read-only home, a torn count), the name
ends with the start of the run id instead, which is unique too.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Final

__all__ = ["ADJECTIVES", "NOUNS", "default_name"]

ADJECTIVES: Final = (
    "able", "amber", "bold", "brave", "bright", "brisk", "calm", "clever", "cosmic", "crisp",
    "curious", "daring", "dawn", "eager", "early", "fair", "fancy", "fast", "fond", "gentle",
    "glad", "golden", "grand", "happy", "hardy", "honest", "jolly", "keen", "kind", "lively",
    "lucky", "merry", "mighty", "misty", "noble", "polar", "proud", "quick", "quiet", "rapid",
    "ready", "royal", "rustic", "shiny", "silent", "silver", "snowy", "solar", "steady",
    "sunny", "swift", "tidy", "vivid", "warm", "wild", "wise", "witty", "young", "zesty",
)  # fmt: skip
NOUNS: Final = (
    "badger", "bear", "beaver", "bison", "crane", "dolphin", "eagle", "falcon", "ferret",
    "finch", "fox", "gecko", "heron", "ibis", "jaguar", "koala", "lemur", "lion", "lynx",
    "marten", "mole", "moose", "narwhal", "newt", "ocelot", "orca", "osprey", "otter", "owl",
    "panda", "parrot", "pelican", "penguin", "puffin", "quail", "rabbit", "raven", "robin",
    "salmon", "seal", "shark", "sparrow", "stoat", "swan", "tapir", "tiger", "toucan",
    "turtle", "walrus", "weasel", "whale", "wolf", "wombat", "yak", "zebra",
)  # fmt: skip

COUNTERS: Final = "counters"


def default_name(home: Path, project: str, run_id: str) -> str:
    """A new `adjective-noun-N` name for a run of `project` in the store at `home`."""
    pick = int.from_bytes(os.urandom(4), "little")
    words = f"{ADJECTIVES[pick % len(ADJECTIVES)]}-{NOUNS[pick // 256 % len(NOUNS)]}"
    try:
        number = _next_number(home, project)
    except (OSError, ValueError):
        return f"{words}-{run_id[:6]}"
    return f"{words}-{number}"


def _next_number(home: Path, project: str) -> int:
    """One more than the project's count so far, stored before it is returned.

    Raises:
        OSError: the counter cannot be read or written.
        ValueError: it holds something other than a count (a torn write).
    """
    folder = home / COUNTERS
    folder.mkdir(parents=True, exist_ok=True)
    # `_blake2` is what hashlib re-exports; importing hashlib itself loads OpenSSL, ~4 ms
    # of every init() (issue 21).
    from _blake2 import blake2b

    key = blake2b(project.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    fd = os.open(folder / key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, or by the process' death
        text = os.pread(fd, 32, 0).strip()
        number = int(text) + 1 if text else 1
        data = b"%d\n" % number
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        return number
    finally:
        os.close(fd)
