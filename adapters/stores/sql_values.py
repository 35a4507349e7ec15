"""Values as the central store's columns keep them: naive Beijing times, text cut to its
column, JSON text."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from schemas.times import BEIJING

__all__ = ["cut", "naive", "now_beijing", "to_json"]


def now_beijing() -> datetime:
    return datetime.now(BEIJING).replace(tzinfo=None)


def naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(BEIJING).replace(tzinfo=None)


def cut(text: str | None, length: int) -> str | None:
    """A sender's text cut to its column: a driver's length check would fail it forever."""
    return None if text is None else text[:length]


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
