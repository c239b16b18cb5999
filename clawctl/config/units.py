"""Parse the unit strings of the config language into plain numbers.

Durations become seconds (float), memory and disk become bytes (int), cpu
becomes millicores (int). The JSON Schema already guarantees the lexical form;
these functions still refuse anything else with ValueError so that they are
safe on their own.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T|KB|MB|GB|TB)?$")
_MEMORY_FACTOR = {
    None: 1,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
    "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
}
_CPU = re.compile(r"^(?:([0-9]+(?:\.[0-9]+)?)|([0-9]+)m)$")


@lru_cache(maxsize=1024, typed=True)  # the same few spellings recur in every pool of a fleet
def parse_duration(text: str) -> float:
    """'1h30m' → 5400.0 seconds. Raises ValueError for anything else."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration")
    return round(sum(float(n) * _DURATION_SECONDS[u] for n, u in _DURATION_PART.findall(text)), 6)


@lru_cache(maxsize=1024, typed=True)
def parse_memory(value: str | int) -> int:
    """'4Gi' → 4294967296, '4GB' → 4000000000, 1024 → 1024 bytes. Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a memory quantity")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value!r} is not a memory quantity")
        return value
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a memory quantity")
    number, unit = match.groups()
    result = int(float(number) * _MEMORY_FACTOR[unit])
    if result < 1:
        raise ValueError(f"{value!r} is less than one byte")
    return result


@lru_cache(maxsize=1024, typed=True)
def parse_cpu(value: str | int | float) -> int:
    """1.5 → 1500, '1500m' → 1500 millicores. Raises ValueError otherwise (and for zero)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a cpu quantity")
    if isinstance(value, (int, float)):
        millis = round(value * 1000)
    else:
        match = _CPU.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"{value!r} is not a cpu quantity")
        cores, millicores = match.groups()
        millis = int(millicores) if millicores is not None else round(float(cores) * 1000)
    if millis < 1:
        raise ValueError(f"{value!r} is less than one millicore")
    return int(millis)


def format_duration(seconds: float) -> str:
    """Shortest exact spelling of ``seconds`` in the config language (5400 → '1h30m')."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if millis == 0 or abs(seconds * 1000 - millis) > 1e-6:
        # Finer than a millisecond (e.g. '0.5ms'): plain seconds keep the value exact.
        return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_bytes(count: int) -> str:
    """Shortest exact spelling of a byte count (4294967296 → '4Gi', 4000000000 → '4G')."""
    candidates = [str(count)]
    for unit in ("Ti", "Gi", "Mi", "Ki", "T", "G", "M", "K"):
        size = _MEMORY_FACTOR[unit]
        if count % size == 0:
            candidates.append(f"{count // size}{unit}")
    return min(candidates, key=len)


def format_cpu(millis: int) -> str:
    """1500 → '1.5', 250 → '250m'."""
    if millis % 100 == 0:
        cores = millis / 1000
        return str(int(cores)) if cores.is_integer() else str(cores)
    return f"{millis}m"


_SEED_CORES = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*[_ -]?\s*(?:cores?|cpus?|vcpus?)\s*$", re.IGNORECASE)
_SEED_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt])(i?)(b?)\s*$", re.IGNORECASE)
_SEED_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)\s*$", re.IGNORECASE)
_DURATION_WORD = {"mil": "ms", "ms": "ms", "s": "s", "se": "s", "m": "m", "mi": "m", "h": "h", "hr": "h", "ho": "h", "d": "d", "da": "d"}


def suggest_spelling(unit: str, value: object) -> str | None:
    """The accepted spelling closest to a near-miss such as '2_cores', '4 gb' or '30 seconds'."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if unit == "duration":
            return f"{value}s"
        return None
    if not isinstance(value, str):
        return None
    if unit == "cpu":
        match = _SEED_CORES.match(value)
        return match.group(1) if match else None
    if unit == "memory":
        match = _SEED_MEMORY.match(value)
        if not match:
            return None
        number, prefix, binary, _ = match.groups()
        return f"{number}{prefix.upper()}{'i' if binary else ''}" if binary else f"{number}{prefix.upper()}B"
    if unit == "duration":
        match = _SEED_DURATION.match(value)
        if not match:
            return None
        number, word = match.groups()
        word = word.lower()
        short = "ms" if word.startswith("mil") or word == "ms" else _DURATION_WORD.get(word[:2], _DURATION_WORD.get(word[:1]))
        return f"{number}{short}" if short else None
    return None
