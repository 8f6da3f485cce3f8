"""Reading media back: the records of a run listed cheaply, each value decoded on demand.

`read_media(directory)` reads a run's journal (every attempt) for its `MediaLogged`
records; a `MediaItem` holds one and loads its blobs only when `.value` (or `.data()`)
is asked for. Decoded values by kind:

| kind | value |
| --- | --- |
| image | numpy array: HWC (HW for grayscale); a batch NHWC |
| histogram | `Histogram` (edges, counts) |
| text, html | str |
| table | `Table` (columns, rows; `.to_frame()` for pandas) |
| figure | dict: the library's own spec (`{"library": ..., "spec": ...}`) |
| audio | `Audio` (samples as floats in [-1, 1], sample_rate) |
| video | bytes of the file (GIF or MP4: `media_type` says which) |
| curve | `Curve` (x, y, kind, annotation) |
| confusion | `ConfusionMatrix` (x labels, y labels, z counts) |
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attrs import define, field

from polytrack.errors import StoreError
from polytrack.models import MediaBlob, MediaLogged
from polytrack.store.blobs import BlobStore

__all__ = ["MediaItem", "latest_per_step", "media_counts", "read_media"]


@define(eq=False)
class MediaItem:
    """One media value of a run: its record's facts now, its bytes when asked."""

    name: str
    kind: str
    step: int
    shape: tuple[int, ...]
    caption: str | None
    meta: dict[str, Any]
    blobs: tuple[MediaBlob, ...]
    logged_at: float
    _store: BlobStore = field(repr=False)
    _value: Any = field(default=None, repr=False, init=False)
    _decoded: bool = field(default=False, repr=False, init=False)

    @classmethod
    def of(cls, record: MediaLogged, store: BlobStore) -> MediaItem:
        return cls(
            name=record.name,
            kind=record.kind,
            step=record.step,
            shape=record.shape,
            caption=record.caption,
            meta=record.meta,
            blobs=record.blobs,
            logged_at=record.logged_at,
            store=store,
        )

    @property
    def media_type(self) -> str:
        """The first file's media type ("image/png", "application/json", ...)."""
        return self.blobs[0].media_type if self.blobs else "application/octet-stream"

    def data(self, index: int = 0) -> bytes:
        """The bytes of the record's `index`-th file (a batch's image, a figure's PNG).

        Raises:
            IndexError: it has no such file.
            StoreError: the blob is missing from the store.
        """
        return self._store.read_bytes(self.blobs[index].digest)

    @property
    def value(self) -> Any:
        """The decoded value (see the module docstring), read once and kept."""
        if not self._decoded:
            self._value = decode(self)
            self._decoded = True
        return self._value

    def _repr_html_(self) -> str:
        from polytrack.media.display import item_html

        html: str = item_html(self)
        return html


def decode(item: MediaItem) -> Any:
    """`item`'s value, by kind (see the module docstring)."""
    kind = item.kind
    if kind == "image":
        from polytrack.media.images import decode_png

        return decode_png(
            [item.data(i) for i, blob in enumerate(item.blobs) if blob.media_type == "image/png"]
        )
    if kind == "histogram":
        from polytrack.media.histograms import decode as decode_histogram

        return decode_histogram(item.data())
    if kind in ("text", "html"):
        return item.data().decode("utf-8")
    if kind == "table":
        from polytrack.media.tables import decode as decode_table

        return decode_table(item.data())
    if kind == "figure":
        from polytrack.media.figures import decode as decode_figure

        return decode_figure(item)
    if kind == "audio":
        from polytrack.media.sound import decode_audio

        return decode_audio(item.data())
    if kind == "video":
        return item.data()
    if kind == "curve":
        from polytrack.media.curves import decode_curve

        return decode_curve(item.data(), item.meta)
    if kind == "confusion":
        from polytrack.media.curves import decode_confusion

        return decode_confusion(item.data())
    raise StoreError(f"media {item.name!r} has a kind this polytrack cannot read: {kind!r}")


def read_media(directory: Path, home: Path, *, name: str | None = None) -> list[MediaItem]:
    """Every media record of the run in `directory` (all attempts), in the order logged;
    only those called `name` when given. `home` holds the blob store."""
    # The journal reader needs numpy and SQLite: loaded only when media are read back.
    from polytrack.store.local import read_events

    store = BlobStore(home)
    return [
        MediaItem.of(event, store)
        for event in read_events(directory)
        if isinstance(event, MediaLogged) and (name is None or event.name == name)
    ]


def latest_per_step(items: Iterable[MediaItem]) -> list[MediaItem]:
    """One item per step, the last logged at each, by step: what a viewer shows."""
    by_step: dict[int, MediaItem] = {}
    for item in items:
        by_step[item.step] = item
    return [by_step[step] for step in sorted(by_step)]


def media_counts(items: Iterable[MediaItem]) -> dict[str, tuple[str, int]]:
    """name -> (kind, number of steps) for a run's media, sorted by name."""
    steps: dict[str, tuple[str, set[int]]] = {}
    for item in items:
        steps.setdefault(item.name, (item.kind, set()))[1].add(item.step)
    return {name: (kind, len(found)) for name, (kind, found) in sorted(steps.items())}
