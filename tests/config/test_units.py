"""Units of the config language: parsing, canonical formatting and seed-vocabulary suggestions."""

from __future__ import annotations

import pytest

from clawctl.config.units import (
    format_bytes,
    format_cpu,
    format_duration,
    parse_cpu,
    parse_duration,
    parse_memory,
    suggest_spelling,
)

GI = 1024**3


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0), ("1.5h", 5400.0),
    ("0s", 0.0), ("1m30s", 90.0), ("0.5ms", 0.0005), ("1h1ms", 3600.001),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "", "1h 30m", "5M", "30 seconds", "1m30", "-5s", "s", "1.s", "30sec"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_parse_duration_refuses_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (0.5, "500ms"), (1.5, "1s500ms"), (60, "1m"), (5400, "1h30m"), (86400 * 3, "3d"),
    (90061.001, "1d1h1m1s1ms"), (0.0005, "0.0005s"), (1.0005, "1.0005s"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, 0.001, 0.0005, 0.25, 1.5, 59, 61, 3599.999, 3600, 5400, 86399, 86400 * 7 + 1])
def test_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("value,count", [
    ("4Gi", 4 * GI), ("512Mi", 512 * 1024**2), ("1Ki", 1024), ("1Ti", 1024**4), ("1.5Gi", 3 * GI // 2),
    ("4GB", 4_000_000_000), ("4G", 4_000_000_000), ("500M", 500_000_000), ("500MB", 500_000_000), ("1K", 1000),
    ("1024", 1024), (1024, 1024), (1, 1),
])
def test_parse_memory(value: str | int, count: int) -> None:
    assert parse_memory(value) == count


def test_decimal_and_binary_gigabytes_differ() -> None:
    """The seed's "4GB" is accepted and means 4×10⁹ bytes; "4Gi" is 4×2³⁰ (about 7% more)."""
    assert parse_memory("4GB") == parse_memory("4G") == 4 * 1000**3
    assert parse_memory("4Gi") == 4 * 1024**3
    assert parse_memory("4Gi") > parse_memory("4GB")


@pytest.mark.parametrize("value", ["4 GB", "4gb", "4Gib", "4GiB", "four", "", "-1", "4 Gi", "1e9"])
def test_parse_memory_refuses_spellings(value: str) -> None:
    with pytest.raises(ValueError, match="is not a memory quantity"):
        parse_memory(value)


@pytest.mark.parametrize("value", [0, -1, "0", "0Mi", "0.1"])
def test_parse_memory_refuses_less_than_a_byte(value: str | int) -> None:
    with pytest.raises(ValueError):
        parse_memory(value)


def test_parse_memory_refuses_booleans() -> None:
    with pytest.raises(ValueError):
        parse_memory(True)


@pytest.mark.parametrize("count,text", [
    (4 * GI, "4Gi"), (4_000_000_000, "4G"), (512 * 1024**2, "512Mi"), (1000, "1K"), (1536, "1536"),
    (3 * GI // 2, "1536Mi"), (1024**4, "1Ti"), (7, "7"),
])
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text


@pytest.mark.parametrize("count", [1, 999, 1000, 1024, 1536, 10**9, 4 * GI, 3 * GI // 2, 123456789])
def test_bytes_round_trip(count: int) -> None:
    assert parse_memory(format_bytes(count)) == count


@pytest.mark.parametrize("value,millis", [
    (1, 1000), (1.5, 1500), (0.25, 250), ("2", 2000), ("1.5", 1500), ("1500m", 1500), ("1m", 1), ("0.001", 1),
])
def test_parse_cpu(value: str | float, millis: int) -> None:
    assert parse_cpu(value) == millis


@pytest.mark.parametrize("value", ["0m", 0, 0.0, "0", 0.0001, "0.0001"])
def test_parse_cpu_refuses_zero(value: str | float) -> None:
    with pytest.raises(ValueError, match="less than one millicore"):
        parse_cpu(value)


@pytest.mark.parametrize("value", ["2_cores", "1.5_cores", "2 cores", "1.5m", "m", "", "-1", True])
def test_parse_cpu_refuses_spellings(value: object) -> None:
    with pytest.raises(ValueError, match="is not a cpu quantity"):
        parse_cpu(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("millis,text", [(1500, "1.5"), (2000, "2"), (250, "250m"), (100, "0.1"), (1, "1m"), (1000, "1")])
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu(millis) == text


@pytest.mark.parametrize("millis", [1, 100, 250, 999, 1000, 1500, 2300, 64000])
def test_cpu_round_trip(millis: int) -> None:
    assert parse_cpu(format_cpu(millis)) == millis


@pytest.mark.parametrize("unit,value,suggestion", [
    # the seed vocabulary
    ("cpu", "2_cores", "2"),
    ("cpu", "1.5_cores", "1.5"),
    ("memory", "4 GB", "4GB"),
    # near misses around it
    ("cpu", "2 cores", "2"), ("cpu", "1 core", "1"), ("cpu", "4 vCPUs", "4"), ("cpu", "2CPU", "2"),
    ("memory", "4gb", "4GB"), ("memory", "4 Gb", "4GB"), ("memory", "4g", "4GB"), ("memory", "4gib", "4Gi"),
    ("memory", "512 mi", "512Mi"), ("memory", "1.5 GiB", "1.5Gi"),
    ("duration", "30 seconds", "30s"), ("duration", "30 sec", "30s"), ("duration", "30 S", "30s"),
    ("duration", "5 minutes", "5m"), ("duration", "10 mins", "10m"), ("duration", "1 min", "1m"),
    ("duration", "2 hours", "2h"), ("duration", "1 hr", "1h"), ("duration", "1 day", "1d"),
    ("duration", "250 milliseconds", "250ms"), ("duration", "3 ms", "3ms"),
    # bare numbers for durations are read as seconds
    ("duration", 30, "30s"), ("duration", 1.5, "1.5s"),
])
def test_suggest_spelling(unit: str, value: object, suggestion: str) -> None:
    assert suggest_spelling(unit, value) == suggestion


@pytest.mark.parametrize("unit,value", [
    ("cpu", "lots"), ("memory", "4 gigs"), ("duration", "2 weeks"), ("duration", "soon"), ("duration", True),
    ("cpu", 2), ("memory", 5), ("duration", None), ("unknown-unit", "4GB"),
])
def test_suggest_spelling_gives_up_when_unsure(unit: str, value: object) -> None:
    assert suggest_spelling(unit, value) is None


@pytest.mark.parametrize("unit,value", [
    ("cpu", "2_cores"), ("cpu", "1.5_cores"), ("memory", "4 GB"), ("memory", "4gib"), ("duration", "30 seconds"),
    ("duration", "2 hours"), ("duration", 30),
])
def test_suggestions_parse(unit: str, value: object) -> None:
    """A suggestion is only worth making if the suggested spelling is accepted."""
    suggestion = suggest_spelling(unit, value)
    assert suggestion is not None
    parser = {"cpu": parse_cpu, "memory": parse_memory, "duration": parse_duration}[unit]
    parser(suggestion)
