"""Sizes (32MiB) and durations (30s) as the DSL writes them; the schema has checked the syntax."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$")
_SIZE_FACTORS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)$")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a string such as '32MiB'."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value.strip())
    if match is None:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2)])


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number or a string such as '500ms', '30s', '2m'."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value.strip())
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _DURATION_FACTORS[match.group(2)]
