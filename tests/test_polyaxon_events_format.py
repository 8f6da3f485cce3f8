"""The Polyaxon backend's metric event lines (`_event_lines`): one
"\\n<step>|<YYYY-MM-DD HH:MM:SS.ffffff>+00:00|<repr(value)>" line per point, the same bytes
from the C formatter (`polytrack._speedups.format_events`) and the pure-Python one.

Each test runs on both paths (the `hot_path` fixture; the C half is skipped where the
extension was not built) against a per-point reference written with the standard library
only; the bad-input tests are the C function's own."""

from __future__ import annotations

import datetime as dt
import struct
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from polytrack.sync.backends import polyaxon_events
from polytrack.sync.backends.base import Series

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# 2024-02-28 12:00:00 UTC, a leap year's February.
T0 = 1_709_121_600.0


@pytest.fixture
def speedups(hot_path: str) -> bool:
    """Whether `_event_lines` is to use C: on the C half it must have format_events."""
    if hot_path == "c":
        assert polyaxon_events.compiled_format_events() is not None, (
            "polytrack._speedups was built without format_events: rebuild it"
        )
    return hot_path == "c"


@pytest.fixture
def format_events(hot_path: str) -> Callable[..., bytes]:
    """The C formatter itself (use with hot_path parametrized to "c" only)."""
    from polytrack._speedups import format_events

    return format_events


c_only = pytest.mark.parametrize("hot_path", ["c"], indirect=True)


def reference(series: Series) -> bytes:
    """The lines written point by point with the standard library: the specification."""
    lines = []
    for step, value, when in zip(
        series.steps.tolist(), series.values.tolist(), series.times.tolist(), strict=True
    ):
        micros = round(when * 1e6)  # half to even, as np.rint
        seconds, fraction = divmod(micros, 1_000_000)
        date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
        lines.append(f"\n{step}|{date}.{fraction:06d}+00:00|{float(value)!r}")
    return "".join(lines).encode("ascii")


def series_of(
    values: npt.ArrayLike | None = None,
    *,
    steps: npt.ArrayLike | None = None,
    times: npt.ArrayLike | None = None,
) -> Series:
    """A series of the given columns; the missing ones are filled in (one point a 10 ms)."""
    n = len(next(np.asarray(c) for c in (values, steps, times) if c is not None))
    return Series(
        "m",
        np.arange(n, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64),
        np.linspace(0.0, 1.0, n) if values is None else np.asarray(values, dtype=np.float64),
        np.asarray(T0 + np.arange(n) * 0.01 if times is None else times, dtype=np.float64),
    )


def test_values_are_written_as_repr_writes_them(speedups: bool) -> None:
    """Every kind of double (random bits: subnormals, nan payloads, both extremes of the
    exponent; integers, decimals, powers of ten, specials, repeats) is its repr."""
    rng = np.random.default_rng(20240229)
    special = [
        0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-05, 0.0001, 1e15, 1e16, 1e17, 1e22, 1e23,
        123456789012345678.0, 9007199254740993.0, 5e-324, -5e-324, 2.2250738585072014e-308,
        2.225073858507201e-308, 1.7976931348623157e308, -1.7976931348623157e308,
        float("nan"), -float("nan"), float("inf"), -float("inf"), 1 / 3, 2 / 3, 100.0, 1e-7,
    ]  # fmt: skip
    scales = 10.0 ** rng.integers(0, 7, 5_000)
    powers_of_ten = np.array([float(f"1e{k}") for k in range(-324, 309)])
    bits = rng.integers(INT64_MIN, INT64_MAX, size=20_000, dtype=np.int64, endpoint=True)
    columns = [
        np.array(special),
        bits.view(np.float64),
        rng.random(5_000),
        rng.standard_normal(5_000) * 10.0 ** rng.integers(-30, 30, 5_000),
        np.round(rng.random(5_000) * 100, 1),
        np.rint(rng.random(5_000) * 1e6 * scales) / scales,  # decimals of 0..6 places
        rng.integers(-(2**60), 2**60, 5_000).astype(np.float64),
        powers_of_ten,
        -powers_of_ten,
        powers_of_ten[:-1] * 3,
        rng.choice(np.array(special), 5_000),  # repeated values, more than the cache holds
        np.repeat(rng.random(600), 7),
    ]
    one = series_of(np.concatenate(columns))
    assert polyaxon_events.event_lines(one, speedups=speedups) == reference(one)


def test_steps_are_written_in_decimal(speedups: bool) -> None:
    """Steps of any int64, negative, zero and both extremes included."""
    rng = np.random.default_rng(7)
    steps = np.concatenate(
        [
            np.array([0, 1, -1, 9, 10, 99, 100, -100, INT64_MIN, INT64_MAX, INT64_MIN + 1]),
            rng.integers(INT64_MIN, INT64_MAX, 5_000, endpoint=True),
            rng.integers(-1000, 1000, 2_000),
            10 ** np.arange(19),
            -(10 ** np.arange(19)),
            10 ** np.arange(1, 19) - 1,
        ]
    )
    one = series_of(steps=steps)
    assert polyaxon_events.event_lines(one, speedups=speedups) == reference(one)


def test_times_are_utc_to_the_rounded_microsecond(speedups: bool) -> None:
    """Times round to the nearest microsecond (half to even) and carry into the second,
    the day and the year; leap days, the epoch and times before it are right."""
    day = 86_400.0
    instants = [
        T0, T0 + 0.5e-6, T0 + 1.5e-6, T0 + 2.5e-6, T0 + 0.9999994, T0 + 0.9999996,
        T0 + day + 0.25,  # 2024-02-29
        1_704_067_199.9999996,  # 2023-12-31 23:59:59.9999996 -> 2024-01-01
        1_704_067_199.999999, 1_704_067_200.0, 951_782_400.5,  # 2000-02-29
        -2_203_891_200.0,  # 1900-03-01 (1900 is no leap year)
        0.0, 1e-6, 4e-7, 6e-7, -0.0, -1e-6, -4e-7, -6e-7, -0.5, -1.0, -1.0000005,
        -day, -day - 1e-6, -86_400 * 365.25 * 70, -1e9 - 0.123456,
        4_102_444_799.999999, 4_102_444_800.0,  # 2099-12-31 23:59:59.999999, 2100-01-01
        253_402_300_799.0,  # 9999-12-31 23:59:59
    ]  # fmt: skip
    rng = np.random.default_rng(3)
    times = np.concatenate(
        [
            np.array(instants),
            rng.uniform(-2.2e9, 4.1e9, 5_000),  # 1900 .. 2100
            T0 + np.cumsum(rng.exponential(0.3, 5_000)),  # runs of one second, gaps of days
            T0 + np.cumsum(rng.exponential(2e5, 500)),
            rng.integers(-2_000_000_000, 4_000_000_000, 500) + 0.0,  # whole seconds
        ]
    )
    one = series_of(times=times)
    assert polyaxon_events.event_lines(one, speedups=speedups) == reference(one)


def test_years_beyond_four_digits_are_written_as_strftime_writes_them(speedups: bool) -> None:
    """Years before 1000 (and before year 1) or after 9999 come out as time.strftime's %Y."""
    years_seconds = [
        -62_135_596_800.0,  # 0001-01-01
        -62_167_219_200.0,  # year 0
        -30_662_668_800.0,  # year 998
        -1e12 - 0.25,  # year -29719
        253_402_300_800.0,  # 10000-01-01
        2.5e12 + 0.75,
        9.2e12,  # near the end of int64 microseconds
    ]
    one = series_of(times=years_seconds)
    assert polyaxon_events.event_lines(one, speedups=speedups) == reference(one)


def test_times_read_as_str_of_an_aware_datetime(speedups: bool) -> None:
    """For the years anyone logs, the time field is `str(datetime)` with microseconds:
    what Polyaxon's reader parses."""
    times = [T0, T0 + 0.000001, T0 + 0.25, 0.0, -0.5, 951_782_400.123456]
    text = polyaxon_events.event_lines(series_of(times=times), speedups=speedups).decode()
    fields = [line.split("|")[1] for line in text.split("\n")[1:]]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    assert fields == [
        (epoch + dt.timedelta(microseconds=round(t * 1e6))).isoformat(" ", "microseconds")
        for t in times
    ]


def test_lines_of_the_longest_kind_outgrow_the_first_guess(speedups: bool) -> None:
    """A long series of the longest lines (extreme steps and values, far years) is whole."""
    n = 30_000
    one = series_of(
        np.full(n, -2.2250738585072014e-308),
        steps=np.full(n, INT64_MIN),
        times=-1e12 - np.arange(n) * 1.000001,
    )
    lines = polyaxon_events.event_lines(one, speedups=speedups)
    assert lines == reference(one)
    assert lines.count(b"\n") == n


def test_strided_columns_are_read_as_their_values(speedups: bool) -> None:
    """Columns that are views with a stride (slices of a larger array) give the same lines."""
    rng = np.random.default_rng(11)
    table = np.zeros(
        4_000, dtype=[("step", "<i8"), ("value", "<f8"), ("time", "<f8"), ("pad", "<i4")]
    )
    table["step"] = rng.integers(-(10**12), 10**12, table.size)
    table["value"] = rng.standard_normal(table.size)
    table["time"] = T0 + rng.random(table.size) * 1e5
    one = Series("m", table["step"][::3], table["value"][::3], table["time"][::3])
    assert not one.steps.flags.c_contiguous
    assert polyaxon_events.event_lines(one, speedups=speedups) == reference(one)


def test_an_empty_series_has_no_lines(speedups: bool) -> None:
    """No points, no bytes."""
    assert polyaxon_events.event_lines(series_of(values=[]), speedups=speedups) == b""


@c_only
def test_format_events_refuses_columns_of_the_wrong_type(
    format_events: Callable[..., bytes],
) -> None:
    """Anything but one-dimensional contiguous int64/int64/float64 buffers is a TypeError
    that names the column."""
    steps = np.arange(4, dtype=np.int64)
    micros = np.arange(4, dtype=np.int64) * 1_000_000
    values = np.ones(4)
    assert format_events(steps, micros, values).count(b"\n") == 4
    wrong = [
        ((steps.astype(np.int32), micros, values), "steps"),
        ((steps, values, values), "micros"),
        ((steps, micros, values.astype(np.float32)), "values"),
        ((steps, micros, steps), "values"),
        ((steps.reshape(2, 2), micros, values), "steps"),
        ((steps, np.arange(8, dtype=np.int64)[::2], values), "micros"),
        (([0, 1, 2, 3], micros, values), "steps"),
        ((steps, micros, "1234"), "values"),
    ]
    for args, name in wrong:
        with pytest.raises(TypeError, match=name):
            format_events(*args)
    with pytest.raises(TypeError):
        format_events(steps, micros)


@c_only
def test_format_events_refuses_columns_of_different_lengths(
    format_events: Callable[..., bytes],
) -> None:
    """Columns of different lengths are a ValueError with the lengths."""
    steps = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match="4, 3 and 4"):
        format_events(steps, steps[:3].copy(), np.ones(4))
    with pytest.raises(ValueError, match="4, 4 and 5"):
        format_events(steps, steps, np.ones(5))


@c_only
def test_format_events_reads_any_int64_buffer(format_events: Callable[..., bytes]) -> None:
    """Buffers other than numpy's are read by their format: array('q') and a memoryview
    cast to 'd' (the buffer protocol, not numpy, is the contract)."""
    import array

    steps = array.array("q", [5, -6])
    micros = array.array("q", [1_500_000, -1])
    values = memoryview(struct.pack("<2d", 0.25, -0.0)).cast("d")
    assert format_events(steps, micros, values) == (
        b"\n5|1970-01-01 00:00:01.500000+00:00|0.25\n-6|1969-12-31 23:59:59.999999+00:00|-0.0"
    )


# The C formatter writes values with Grisu3 and falls back on dtoa (what repr calls) where
# Grisu3 gives up; these pin its output to repr's, byte for byte, where the two could
# differ: the digits (shortest, nearest), the layout (fixed or exponent, ".0", the
# exponent's sign and width) and the special values.


def c_reprs(format_events: Callable[..., bytes], values: npt.ArrayLike) -> list[str]:
    """The value fields of format_events' lines for `values`."""
    column = np.ascontiguousarray(values, dtype=np.float64)
    zeros = np.zeros(column.size, dtype=np.int64)
    lines = format_events(zeros, zeros, column).decode("ascii").split("\n")[1:]
    return [line.rpartition("|")[2] for line in lines]


def assert_reprs(format_events: Callable[..., bytes], values: npt.ArrayLike) -> None:
    """format_events writes each of `values` as repr does (the first differences shown)."""
    column = np.asarray(values, dtype=np.float64)
    expected = [repr(value) for value in column.tolist()]
    got = c_reprs(format_events, column)
    wrong = [(e, g) for e, g in zip(expected, got, strict=True) if e != g]
    assert not wrong, f"{len(wrong)} values differ from repr (repr, C): {wrong[:10]}"


def neighbours(values: npt.ArrayLike, ulps: int) -> npt.NDArray[np.float64]:
    """`values` and the doubles up to `ulps` steps below and above each, of either sign."""
    bits = np.abs(np.asarray(values, dtype=np.float64)).view(np.int64)
    steps = np.arange(-ulps, ulps + 1, dtype=np.int64)
    near = (bits[:, None] + steps[None, :]).ravel()
    near = near[(near >= 0) & (near < 0x7FF0000000000000)].view(np.float64)
    return np.concatenate([near, -near])


@c_only
def test_random_bit_patterns_are_repr(format_events: Callable[..., bytes]) -> None:
    """Doubles of random bits (every exponent, nan payloads, infinities by chance) and random
    subnormals are written as repr writes them."""
    rng = np.random.default_rng(1)
    bits = rng.integers(INT64_MIN, INT64_MAX, 200_000, dtype=np.int64, endpoint=True)
    subnormal = rng.integers(1, 2**52, 20_000, dtype=np.int64)
    tiny = rng.integers(1, 2**12, 2_000, dtype=np.int64)  # few significant digits
    assert_reprs(format_events, np.concatenate([bits, subnormal, -subnormal, tiny]).view("f8"))


@c_only
def test_human_decimals_are_repr(format_events: Callable[..., bytes]) -> None:
    """Decimals of 1..17 significant digits, as people and round() write them, scaled by
    powers of ten from 1e-30 to 1e30, are written with their own digits."""
    rng = np.random.default_rng(2)
    n = 100_000
    places = rng.integers(1, 18, n).tolist()
    scales = (10.0 ** rng.integers(-30, 31, n)).tolist()
    fractions = rng.random(n).tolist()
    rounded = [round(x, k) * s for x, k, s in zip(fractions, places, scales, strict=True)]
    digits = rng.integers(1, 18, n)
    mantissas = (rng.random(n) * 10.0**digits).astype(np.int64).tolist()
    exponents = rng.integers(-30, 31, n).tolist()
    typed = [float(f"{m}e{e}") for m, e in zip(mantissas, exponents, strict=True)]
    assert_reprs(format_events, rounded + typed)


@c_only
def test_integers_are_repr(format_events: Callable[..., bytes]) -> None:
    """Integral doubles: small ones, any below 2**53, the odd ones past it (which round) and
    huge ones are written as repr writes them, ".0" and all."""
    rng = np.random.default_rng(3)
    exact = rng.integers(-(2**53), 2**53, 20_000, dtype=np.int64, endpoint=True)
    beyond = rng.integers(2**53, 2**63 - 1, 20_000, dtype=np.int64)
    huge = rng.random(5_000) * 10.0 ** rng.integers(16, 309, 5_000)
    values = [
        np.arange(-10_000, 10_001, dtype=np.float64),
        exact.astype(np.float64),
        beyond.astype(np.float64),
        np.array([float(2**53 + k) for k in range(-5, 6)]),
        np.floor(huge),
    ]
    assert_reprs(format_events, np.concatenate(values))


@c_only
def test_powers_of_two_and_ten_and_their_neighbours_are_repr(
    format_events: Callable[..., bytes],
) -> None:
    """Every power of two (some, like 2**-25 and 2**81, are doubles Grisu3 gives up on, so
    dtoa writes them) and of ten, and the doubles a few steps either side of each."""
    twos = np.ldexp(1.0, np.arange(-1074, 1024))
    tens = np.array([float(f"1e{k}") for k in range(-323, 309)])
    assert_reprs(format_events, np.concatenate([neighbours(twos, 2), neighbours(tens, 3)]))


@c_only
def test_the_switch_to_exponent_notation_is_repr(format_events: Callable[..., bytes]) -> None:
    """Around 1e16 and 1e-4, where repr switches between fixed and exponent notation, and
    around the other powers of ten near them, each double is written as repr writes it."""
    switches = np.array([1e-5, 1e-4, 1e-3, 1e15, 1e16, 1e17, 9999999999999998.0])
    near = neighbours(switches, 200)
    assert_reprs(format_events, near)
    fixed = c_reprs(format_events, [9999999999999998.0, 0.0001, 1234567890123456.8])
    assert fixed == ["9999999999999998.0", "0.0001", "1234567890123456.8"]
    assert c_reprs(format_events, [1e16, 9.999999999999999e-05, 1e-05, 1.5e300, 2.5e-300]) == [
        "1e+16", "9.999999999999999e-05", "1e-05", "1.5e+300", "2.5e-300",
    ]  # fmt: skip


@c_only
def test_values_of_seventeen_digits_are_repr(format_events: Callable[..., bytes]) -> None:
    """Doubles whose shortest repr needs all 17 significant digits are written in full."""
    rng = np.random.default_rng(4)
    candidates = rng.standard_normal(100_000) * 10.0 ** rng.integers(-20, 21, 100_000)
    long = [
        v
        for v in candidates.tolist()
        if len(repr(v).partition("e")[0].replace(".", "").strip("-0")) == 17
    ] + [0.1 + 0.2, 1 / 3 * 1e-300, 2.2250738585072014e-308 * 3]
    assert len(long) > 20_000
    assert_reprs(format_events, long)


@c_only
def test_extremes_and_specials_are_repr(format_events: Callable[..., bytes]) -> None:
    """The least subnormal, the largest subnormal, the least normal, the largest double,
    zeros, infinities and nans of either sign are written as repr writes them."""
    extremes = [5e-324, 2.225073858507201e-308, 2.2250738585072014e-308, 1.7976931348623157e308]
    specials = [0.0, float("inf"), float("nan")]
    values = extremes + [-v for v in extremes] + specials + [-v for v in specials]
    assert c_reprs(format_events, values) == [repr(v) for v in values]
    assert c_reprs(format_events, [-0.0, -float("nan"), -float("inf")]) == ["-0.0", "nan", "-inf"]
