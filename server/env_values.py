"""Reading environment variables for :mod:`server.config`: one reader that names the variable
in every complaint, and the parsers of each kind of value (integers, numbers in a range,
URLs, choices, switches, origins)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from server.errors import ConfigError

T = TypeVar("T")


class Env:
    """Reads one variable at a time; unset or blank takes the default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def get(self, name: str, default: T, parse: Callable[[str, str], T]) -> T:
        value = self.raw(name)
        return default if value is None else parse(name, value)


def refuse(name: str, expected: str, value: str) -> ConfigError:
    return ConfigError(f"{name}: expected {expected}, got {value!r}")


def integer(low: int, high: int) -> Callable[[str, str], int]:
    expected = f"an integer from {low} to {high}"

    def parse(name: str, value: str) -> int:
        try:
            number = int(value, 10)
        except ValueError:
            raise refuse(name, expected, value) from None
        if not low <= number <= high:
            raise refuse(name, expected, value)
        return number

    return parse


def number(expected: str, admits: Callable[[float], bool]) -> Callable[[str, str], float]:
    """A finite float that ``admits`` accepts; ``expected`` describes it in the complaint."""

    def parse(name: str, value: str) -> float:
        try:
            parsed = float(value)
        except ValueError:
            raise refuse(name, expected, value) from None
        if not math.isfinite(parsed) or not admits(parsed):
            raise refuse(name, expected, value)
        return parsed

    return parse


duration = number("a finite number of seconds > 0", lambda n: n > 0)
rate = number("a finite number >= 0 (0 for no limit)", lambda n: n >= 0)
per_second = number("a finite number > 0 of calls per second", lambda n: n > 0)
leeway = number("a number of seconds from 0 to 3600", lambda n: 0 <= n <= 3600)


def duration_or_off(name: str, value: str) -> float:
    """A duration, or ``0`` for "off"."""
    if value.strip() in ("0", "0.0"):
        return 0.0
    return duration(name, value)


def url(*schemes: str) -> Callable[[str, str], str]:
    expected = "a URL starting with " + " or ".join(f"{s}://" for s in schemes)

    def parse(name: str, value: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:
            raise refuse(name, expected, value) from None
        if parts.scheme not in schemes:
            # Do not echo the URL: it may carry a password.
            raise ConfigError(f"{name}: expected {expected}")
        return value

    return parse


def text(name: str, value: str) -> str:
    return value


def choice(*choices: str) -> Callable[[str, str], str]:
    expected = "one of " + ", ".join(choices)

    def parse(name: str, value: str) -> str:
        for option in choices:
            if value.lower() == option.lower():
                return option
        raise refuse(name, expected, value)

    return parse


def switch(name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise refuse(name, "1 or 0", value)


def origins(name: str, value: str) -> tuple[str, ...]:
    listed = tuple(part.strip() for part in value.split(",") if part.strip())
    for origin in listed:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise refuse(name, "* or comma-separated origins like https://app.example", origin)
    if not listed:
        raise refuse(name, "* or comma-separated origins", value)
    return ("*",) if "*" in listed else listed


__all__ = [
    "Env",
    "choice",
    "duration",
    "duration_or_off",
    "integer",
    "leeway",
    "number",
    "origins",
    "per_second",
    "rate",
    "refuse",
    "switch",
    "text",
    "url",
]
