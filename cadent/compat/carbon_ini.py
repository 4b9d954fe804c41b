"""INI files with carbon's ConfigParser semantics, read through configobj.

carbon reads storage-schemas.conf and storage-aggregation.conf with Python's ConfigParser.
configobj parses a different dialect (inline ``#`` comments, quoting, ``=`` only), so each
line is first rewritten into a shape on which both agree:

* full-line comments (first non-blank character ``#`` or ``;``) and blank lines vanish;
* ``key = value`` and ``key: value`` split at the first ``=`` or ``:``; keys are lower-cased
  and values are kept verbatim (no inline comments, quotes are ordinary characters);
* an indented line after an option continues that option's value (joined with ``\\n``);
* ``%%`` stands for ``%``; any other ``%`` is an error, as with ConfigParser's interpolation.

configobj then checks the structure (sections, duplicate sections and keys) and the raw
values are put back from a side table, with the line each came from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from configobj import ConfigObj, ConfigObjError

from cadent.compat.errors import ConfigError

_SECTION = re.compile(r"\[(?P<name>.+)\]")
_OPTION_SPLIT = re.compile(r"[=:]")


@dataclass
class IniSection:
    """One ``[name]`` section: options by lower-cased key, each with its source line."""

    name: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def _unescape_percent(value: str, filename: str, line: int) -> str:
    if "%" not in value:
        return value
    if "%" in value.replace("%%", ""):
        raise ConfigError(filename, line, f"'%' must be written '%%' in {value!r}")
    return value.replace("%%", "%")


def read_ini(filename: str) -> list[IniSection]:
    """Sections of ``filename`` in file order; ConfigError on anything ConfigParser refuses."""
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(filename, 0, f"cannot read: {exc}") from exc

    rewritten: list[str] = []
    sections: list[IniSection] = []
    values: list[list[str]] = []  # raw value lines per option, index = placeholder number
    owners: list[tuple[IniSection, str, int]] = []
    current: IniSection | None = None
    last_option = -1
    last_indent = 0

    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            if not stripped and last_option >= 0:
                values[last_option].append("")
            continue
        indent = len(raw) - len(raw.lstrip())
        if last_option >= 0 and indent > last_indent:
            values[last_option].append(stripped)
            continue
        header = _SECTION.match(stripped)
        if header is not None:
            current = IniSection(header.group("name"), number)
            sections.append(current)
            last_option = -1
            # configobj reads brackets as nesting: hand it a neutral placeholder name.
            rewritten.append(f"[s{len(sections) - 1}]")
            continue
        if current is None:
            raise ConfigError(filename, number, "option line before any [section] header")
        delimiter = _OPTION_SPLIT.search(stripped)
        if delimiter is None:
            raise ConfigError(filename, number, f"not 'key = value' nor a section: {stripped!r}")
        key = stripped[: delimiter.start()].strip().lower()
        if not key:
            raise ConfigError(filename, number, f"empty option name: {stripped!r}")
        values.append([stripped[delimiter.end():].strip()])
        owners.append((current, key, number))
        last_option = len(values) - 1
        last_indent = indent
        # configobj never sees the real key or value; repr() quotes the key safely.
        rewritten.append(f"{key!r} = v{last_option}")

    names_seen: dict[str, int] = {}
    for section in sections:
        if section.name in names_seen:
            raise ConfigError(
                filename, section.line,
                f"section [{section.name}] already defined on line {names_seen[section.name]}",
            )
        names_seen[section.name] = section.line

    try:
        ConfigObj(rewritten, list_values=False, interpolation=False, raise_errors=True)
    except ConfigObjError as exc:
        # Placeholder line i maps back to the i-th meaningful line of the file.
        line = getattr(exc, "line_number", 0) or 0
        source = _source_line(line, sections, owners)
        raise ConfigError(filename, source, f"duplicate or malformed entry ({exc.msg})") from exc

    for index, (section, key, number) in enumerate(owners):
        value = "\n".join(values[index]).rstrip("\n")
        section.options[key] = _unescape_percent(value, filename, number)
        section.lines[key] = number
    return sections


def _source_line(
    rewritten_line: int, sections: list[IniSection], owners: list[tuple[IniSection, str, int]]
) -> int:
    """The file line of the n-th rewritten line (1-based), 0 when unknown."""
    ordered = sorted([s.line for s in sections] + [o[2] for o in owners])
    if 1 <= rewritten_line <= len(ordered):
        return ordered[rewritten_line - 1]
    return 0


def file_exists(filename: str) -> bool:
    """True when ``filename`` exists and is readable (carbon's own precondition)."""
    return os.access(filename, os.R_OK)


__all__ = ["IniSection", "file_exists", "read_ini"]
