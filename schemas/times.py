"""Parsing the three time forms legacy systems emit, as Beijing time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["BEIJING", "format_time", "parse_time"]

_BEIJING_OFFSET = timedelta(hours=8)
BEIJING = timezone(_BEIJING_OFFSET, "Asia/Shanghai")


def parse_time(text: str) -> datetime | None:
    """Parse ``yyyy-MM-dd HH:mm:ss``, ``yyyyMMddHHmmss`` or ISO 8601 into Beijing time.

    Returns None when the text is not one of the forms or not a real calendar time
    (2026-02-30, 25:00:00). Naive times are Beijing time; zoned times are converted.
    """
    try:
        if len(text) == 14 and text.isdigit():
            return datetime(
                int(text[0:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:14]),
                tzinfo=BEIJING,
            )
        if len(text) >= 19 and text[4] == "-" and text[10] in " T":
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=BEIJING)
            # Not astimezone: it goes through UTC, which overflows in the first hours of
            # year 1 even when the Beijing time is a real one.
            offset = parsed.utcoffset()
            assert offset is not None
            shifted = parsed.replace(tzinfo=None) + (_BEIJING_OFFSET - offset)
            return shifted.replace(tzinfo=BEIJING)
    except (ValueError, OverflowError):  # OverflowError: a zone pushes it past year 1..9999
        return None
    return None


def format_time(moment: datetime) -> str:
    """The canonical exchange form: ``yyyy-MM-dd HH:mm:ss`` in Beijing time."""
    m = moment.astimezone(BEIJING)
    # An f-string: strftime costs several times more, and this runs per record.
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d}:{m.second:02d}"
