"""A small TOML subset reader for the agent's config file (JetPack's Python 3.10 has no
``tomllib``, and the agent installs nothing beyond its requirements).

Supported: ``# comments``, ``key = value`` at the top, ``[table]`` and ``[[array.of.tables]]``
headers (one level), values that are basic ``"strings"`` (with ``\\" \\\\ \\n \\t`` escapes),
literal ``'strings'``, integers, floats, ``true``/``false`` and one-line arrays of those.
Anything else is a ValueError naming the line, so a typo never passes silently.
"""

from __future__ import annotations

import re
from typing import Any

_KEY = re.compile(r"^([A-Za-z0-9_-]+)\s*=\s*(.+)$")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def loads(text: str) -> dict[str, Any]:
    document: dict[str, Any] = {}
    table = document
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        try:
            if line.startswith("[["):
                name = _header(line, "[[", "]]")
                items = document.setdefault(name, [])
                if not isinstance(items, list):
                    raise ValueError(f"{name} is not an array of tables")
                table = {}
                items.append(table)
            elif line.startswith("["):
                name = _header(line, "[", "]")
                table = document.setdefault(name, {})
                if not isinstance(table, dict):
                    raise ValueError(f"{name} is not a table")
            else:
                match = _KEY.match(line)
                if match is None:
                    raise ValueError("expected key = value")
                key, value = match.group(1), match.group(2).strip()
                if key in table:
                    raise ValueError(f"duplicate key {key}")
                table[key] = _value(value)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}: {raw.strip()!r}") from None
    return document


def _header(line: str, opening: str, closing: str) -> str:
    if not line.endswith(closing):
        raise ValueError("unclosed table header")
    name = line[len(opening) : -len(closing)].strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"unsupported table name {name!r}")
    return name


def _strip_comment(line: str) -> str:
    quote: str | None = None
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote == '"':
            escaped = True
        elif quote is None and char in "\"'":
            quote = char
        elif char == quote:
            quote = None
        elif char == "#" and quote is None:
            return line[:index]
    return line


def _value(text: str) -> Any:
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError("arrays must fit on one line")
        inner = text[1:-1].strip()
        return [_value(part.strip()) for part in _split_items(inner)] if inner else []
    if text.startswith('"'):
        return _basic_string(text)
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1]:
            raise ValueError("bad literal string")
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    number = text.replace("_", "")
    try:
        return int(number)
    except ValueError:
        pass
    try:
        return float(number)
    except ValueError:
        raise ValueError(f"unsupported value {text!r}") from None


def _basic_string(text: str) -> str:
    if len(text) < 2 or not text.endswith('"'):
        raise ValueError("unclosed string")
    out: list[str] = []
    chars = iter(text[1:-1])
    for char in chars:
        if char == '"':
            raise ValueError("unescaped quote in string")
        if char == "\\":
            escape = next(chars, "")
            if escape not in _ESCAPES:
                raise ValueError(f"unsupported escape \\{escape}")
            out.append(_ESCAPES[escape])
        else:
            out.append(char)
    return "".join(out)


def _split_items(inner: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in inner:
        if quote is None and char == ",":
            parts.append("".join(current))
            current = []
            continue
        if quote is None and char in "\"'":
            quote = char
        elif char == quote:
            quote = None
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts
