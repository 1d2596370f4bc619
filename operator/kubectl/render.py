"""Turning reports into text: tables, utilisation bars, colour on a terminal, JSON and YAML."""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COLOURS = {"good": "32", "warn": "33", "bad": "31", "dim": "2", "bold": "1"}


@dataclass(frozen=True)
class Style:
    """Colour only when writing to a terminal, and never with NO_COLOR set."""

    colour: bool = False

    @classmethod
    def for_stream(cls, stream: TextIO) -> Style:
        return cls(stream.isatty() and "NO_COLOR" not in os.environ)

    def __call__(self, text: str, tone: str) -> str:
        if not self.colour or not text:
            return text
        return f"\x1b[{_COLOURS[tone]}m{text}\x1b[0m"


def width(text: str) -> int:
    return len(_ANSI.sub("", text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell, as `kubectl get` prints them."""
    widths = [max([width(h), *(width(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row)]
        lines.append(indent + "   ".join(cells).rstrip())
    return lines


def bar(used: int, total: int, style: Style, size: int = 20) -> str:
    """`[########------------]  40%`: red from 90 %, yellow from 75 %."""
    fraction = used / total if total else 0.0
    filled = min(size, round(fraction * size))
    if used and not filled:
        filled = 1  # one address in a /64 is still not nothing
    tone = "bad" if fraction >= 0.9 else "warn" if fraction >= 0.75 else "good"
    percent = f"{fraction * 100:3.0f}%" if fraction >= 0.01 or not used else " <1%"
    return f"[{style('#' * filled, tone)}{'-' * (size - filled)}] {percent}"


def age(stamp: str, now: datetime.datetime | None = None) -> str:
    """`5s`, `3m`, `2h`, `4d` since an RFC 3339 time, as kubectl shows ages."""
    if not stamp:
        return "?"
    then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h" if seconds < 172800 else f"{seconds // 86400}d"


def counted(count: int, noun: str) -> str:
    """`1 pool`, `3 pools`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False))


def wrap(text: str, indent: str, limit: int = 100) -> list[str]:
    """`text` in lines of at most `limit` characters, each starting with `indent`."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > limit:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, indent + line] if line else lines
