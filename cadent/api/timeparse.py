"""graphite's ``from``/``until`` time formats → epoch seconds.

Accepted (all relative to ``now``, a timezone-aware datetime):

* ``now``; epoch seconds (all digits, except an 8-digit ``YYYYMMDD``);
* offsets ``-<n><unit>`` / ``+<n><unit>``, chainable (``-1h30min``), units ``s``/``sec``/
  ``second(s)``, ``min``/``minute(s)``, ``h``/``hour(s)``, ``d``/``day(s)``, ``w``/``week(s)``,
  ``mon``/``month(s)`` (30 days), ``y``/``year(s)`` (365 days); a bare ``m`` is rejected;
* absolute references ``HH:MM_YYYYMMDD``, ``YYYYMMDD``, ``MM/DD/YY[YY]``, ``HH:MM`` (today),
  ``today``, ``yesterday``, ``tomorrow``, ``noon``, ``midnight``, ``teatime``, month names with
  a day (``jan1``, ``january_1``), weekday names (the last one on or before today), each
  optionally followed by an offset (``midnight-1d``, ``noon+2h``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

_UNIT_SECONDS = (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("min", "mins", "minute", "minutes"), 60),
    (("h", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "week", "weeks"), 7 * 86400),
    (("mon", "month", "months"), 30 * 86400),
    (("y", "year", "years"), 365 * 86400),
)
UNITS: dict[str, int] = {name: secs for names, secs in _UNIT_SECONDS for name in names}

_OFFSET_TERM = re.compile(r"([+-])?\s*(\d+)\s*([a-z]+)")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeParseError(ValueError):
    """A time string graphite would reject; the message is shown to the client."""


def parse_offset(text: str) -> timedelta:
    """``-1h30min`` → timedelta(-5400 s); TimeParseError on bad units or leftovers."""
    text = text.strip()
    if not text:
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    if text[0] in "+-":
        text = text[1:]
    total = 0
    pos = 0
    for match in _OFFSET_TERM.finditer(text):
        if match.start() != pos:
            raise TimeParseError(f"Invalid offset {text!r}")
        term_sign, count, unit = match.groups()
        if unit not in UNITS:
            raise TimeParseError(f"Invalid offset unit '{unit}'")
        total += (-1 if term_sign == "-" else 1) * int(count) * UNITS[unit]
        pos = match.end()
    if pos != len(text):
        raise TimeParseError(f"Invalid offset {text!r}")
    return timedelta(seconds=sign * total)


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _parse_reference(ref: str, now: datetime) -> datetime:
    if ref in ("", "now"):
        return now
    # An optional leading HH:MM (or noon/midnight/teatime) sets the time of the date part.
    hour = minute = None
    m = re.match(r"(\d{1,2}):(\d{2})(?:_|$)", ref)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        ref = ref[m.end():]
    else:
        for word, (h, mi) in (("noon", (12, 0)), ("midnight", (0, 0)), ("teatime", (16, 0))):
            if ref.startswith(word):
                hour, minute = h, mi
                ref = ref[len(word):].lstrip("_")
                break
    date = _parse_date(ref, now)
    if hour is None:
        return date if ref else now
    if not 0 <= hour < 24 or not 0 <= minute < 60:
        raise TimeParseError(f"Invalid time {hour}:{minute:02d}")
    return date.replace(hour=hour, minute=minute, second=0, microsecond=0)


def _parse_date(ref: str, now: datetime) -> datetime:
    today = _midnight(now)
    if ref in ("", "today"):
        return today if ref else now
    if ref == "yesterday":
        return today - timedelta(days=1)
    if ref == "tomorrow":
        return today + timedelta(days=1)
    try:
        if re.fullmatch(r"\d{8}", ref):
            return today.replace(year=int(ref[:4]), month=int(ref[4:6]), day=int(ref[6:]))
        m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", ref)
        if m:
            year = int(m.group(3))
            if year < 100:
                year += 1900 if year >= 70 else 2000
            return today.replace(year=year, month=int(m.group(1)), day=int(m.group(2)))
        m = re.fullmatch(r"([a-z]{3})[a-z]*_?(\d{1,2})(?:_?(\d{4}))?", ref)
        if m and m.group(1) in _MONTHS:
            year = int(m.group(3)) if m.group(3) else today.year
            return today.replace(year=year, month=_MONTHS.index(m.group(1)) + 1, day=int(m.group(2)))
    except ValueError as exc:
        raise TimeParseError(f"Invalid date {ref!r}: {exc}") from None
    if ref[:3] in _WEEKDAYS and re.fullmatch(r"[a-z]+", ref):
        back = (today.weekday() - _WEEKDAYS.index(ref[:3])) % 7
        return today - timedelta(days=back)
    raise TimeParseError(f"Unknown day reference {ref!r}")


def parse_datetime(text: str, now: datetime) -> datetime:
    """Parse one graphite time string against ``now`` (aware datetime in the request's zone);
    TimeParseError for anything else, including times beyond what a datetime holds."""
    s = str(text).strip().lower().replace(" ", "").replace(",", "")
    if not s:
        raise TimeParseError("Empty time value")
    try:
        return _parse_datetime(s, now)
    except (OverflowError, OSError, ValueError) as exc:
        if isinstance(exc, TimeParseError):
            raise
        raise TimeParseError(f"Time out of range {s[:100]!r}") from None


def _parse_datetime(s: str, now: datetime) -> datetime:
    if s.isdigit() and not (len(s) == 8 and 1900 <= int(s[:4]) <= 2100 and 1 <= int(s[4:6]) <= 12):
        return datetime.fromtimestamp(int(s), now.tzinfo)
    if s[0] in "+-":
        return now + parse_offset(s)
    # split "reference" from a trailing offset such as "midnight-1d"; dates never contain +/-
    m = re.search(r"[+-]", s)
    ref, offset = (s[: m.start()], s[m.start():]) if m else (s, "")
    return _parse_reference(ref, now) + parse_offset(offset)


def parse_time(text: str, now: float, tz: tzinfo = timezone.utc) -> int:
    """Epoch seconds (int) for ``text`` relative to the epoch ``now``."""
    ref = datetime.fromtimestamp(int(now), tz)
    parsed = parse_datetime(text, ref)
    try:
        return int(parsed.timestamp())
    except (OverflowError, OSError, ValueError):
        raise TimeParseError(f"Time out of range {str(text)[:100]!r}") from None


def parse_range(
    from_text: str | None, until_text: str | None, now: float, tz: tzinfo = timezone.utc
) -> tuple[int, int]:
    """graphite's ``(from, until)`` with defaults ``-1d``/``now``; swapped if reversed.

    TimeParseError("Invalid empty time range") when both are equal.
    """
    start = parse_time(from_text or "-1d", now, tz)
    end = parse_time(until_text or "now", now, tz)
    if start > end:
        start, end = end, start
    if start == end:
        raise TimeParseError("Invalid empty time range")
    return start, end


def timezone_named(name: str | None) -> tzinfo:
    """``tz=`` request parameter → tzinfo; UTC when empty; TimeParseError when unknown."""
    if not name:
        return timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError on odd keys
        raise TimeParseError(f"Unknown time zone {name!r}") from None


__all__ = ["TimeParseError", "UNITS", "parse_datetime", "parse_offset", "parse_range", "parse_time", "timezone_named"]
