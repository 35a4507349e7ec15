"""GB/T 2260 division codes: levels, parents and containment."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Level", "city_of", "division_path", "level_of", "province_of", "within"]


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


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
