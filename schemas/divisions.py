"""GB/T 2260 division codes: levels, parents and containment."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["DIVISION_FORM", "Level", "city_of", "division_path", "is_division", "level_of",
           "province_of", "within"]

# The province-level codes of GB/T 2260 (first two digits). A code outside them names no
# place: a node or level given one would route to queues no level ever binds.
_PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
    "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
    "63", "64", "65", "71", "81", "82",
})
_SIX_DIGITS = re.compile(r"[0-9]{6}")

# What a division code must be, for the errors that refuse one (English, Chinese).
DIVISION_FORM = (
    "a 6-digit GB/T 2260 code whose first two digits are a province's (11 to 82), "
    "such as 430102",
    "6 位 GB/T 2260 行政区划代码，前两位须为省级代码（11 至 82），例如 430102",
)


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


def is_division(code: str) -> bool:
    """Six ASCII digits whose first two are a province's: a code that can name a place."""
    return _SIX_DIGITS.fullmatch(code) is not None and code[:2] in _PROVINCES


def province_of(code: str) -> str:
    return code[:2] + "0000"


def city_of(code: str) -> str:
    """The city a code belongs to; a province code is its own city."""
    return code if code.endswith("0000") else code[:4] + "00"


def level_of(code: str) -> Level:
    if code.endswith("0000"):
        return Level.PROVINCE
    if code.endswith("00"):
        return Level.CITY
    return Level.COUNTY


def division_path(code: str) -> tuple[str, str, str]:
    """Province, city and county of a node's division, repeating the lowest level.

    ``430102`` → (430000, 430100, 430102); a city node ``430100`` → (430000, 430100,
    430100); a province node ``430000`` → (430000, 430000, 430000). Province-governed
    county-level cities (4290xx) sit under their pseudo-city 429000 like any county.
    """
    province = province_of(code)
    level = level_of(code)
    if level is Level.PROVINCE:
        return (province, province, province)
    city = city_of(code)
    return (province, city, city if level is Level.CITY else code)


def within(outer: str, inner: str) -> bool:
    """True when division ``inner`` lies within ``outer``.

    Same province always; and the same city where ``outer`` is a city or a county
    (a county department may report cases of its own city's other counties).
    """
    if inner[:2] != outer[:2]:
        return False
    if level_of(outer) is Level.PROVINCE:
        return True
    return inner[:4] == outer[:4]
