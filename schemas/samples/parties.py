"""Applicants: people with resident IDs, firms and other organisations with credit codes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from schemas.samples import vocab
from schemas.samples.identity import credit_code, person_name, resident_id
from schemas.samples.places import PROVINCES
from schemas.samples.vocab import ItemTemplate

__all__ = ["Applicant", "applicant_for"]

_CHANNELS = "11111222223449"  # window and online dominate


@dataclass(frozen=True, slots=True)
class Applicant:
    kind: str  # SQRLX: 1 person, 2 company, 3 other organisation
    name: str
    id_type: str  # SQRZJLX
    id_number: str
    contact: str  # who comes to collect the result
    channel: str  # TJFS


def applicant_for(rng: random.Random, item: ItemTemplate, division: str,
                  when: datetime) -> Applicant:
    """An applicant an item of this kind would see, registered near ``division``."""
    kind = {"person": "1", "company": "2"}.get(item.applicants) or rng.choice("1223")
    channel = rng.choice(_CHANNELS)
    if kind == "1":
        name = person_name(rng)
        id_type, number = _person_id(rng, division, when)
        return Applicant(kind, name, id_type, number, name, channel)
    contact = person_name(rng)
    if kind == "2":
        return Applicant(kind, _firm_name(rng, division), "20",
                         credit_code(rng, "91", division), contact, channel)
    if rng.random() < 0.8:
        return Applicant(kind, _place(division) + rng.choice(vocab.OTHER_ORGS), "20",
                         credit_code(rng, "52", division), contact, channel)
    return Applicant(kind, _place(division) + rng.choice(vocab.OTHER_ORGS), "99",
                     f"QT{rng.randrange(10**10):010d}", contact, channel)


def _person_id(rng: random.Random, division: str, when: datetime) -> tuple[str, str]:
    draw = rng.random()
    if draw < 0.94:
        return "10", resident_id(rng, division, when)
    if draw < 0.97:
        return "30", f"E{rng.randrange(10**8):08d}"
    return "40", f"C{rng.randrange(10**8):08d}"


def _firm_name(rng: random.Random, division: str) -> str:
    return (_place(division) + rng.choice(vocab.FIRM_WORDS) + rng.choice(vocab.INDUSTRIES)
            + rng.choice(vocab.FIRM_FORMS))


@cache
def _place(division: str) -> str:
    """A short place prefix for trade names: the city of the division, or the province."""
    province = PROVINCES.get(division[:2] + "0000")
    if province is None:
        return ""
    for city in province.cities:
        if city.code[:4] == division[:4]:
            return city.name.removesuffix("市")
    return province.short
