"""The departments behind one generated file: a city bureau, its county branches, items.

Each file plays one vertical department's front-end machine at city level: the HEAD is
the city bureau, records come from the bureau and its county branches (all inside the
city, so the division rule holds), and the items are the bureau's catalogue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from schemas.samples.identity import credit_code, person_name
from schemas.samples.places import City, Province
from schemas.samples.vocab import DEPARTMENTS, Department, ItemTemplate

__all__ = ["Item", "Org", "Sender", "build_sender"]

_STAFF_PER_ORG = 5


@dataclass(frozen=True, slots=True)
class Org:
    """An approving department (机构信息)."""

    code: str
    name: str
    division: str
    parent: str | None
    staff: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Item:
    """An approval item (事项信息) in the bureau's catalogue."""

    code: str
    template: ItemTemplate
    org: Org


@dataclass(frozen=True, slots=True)
class Sender:
    """Who feeds one file: the city bureau (the HEAD), its branches and its items."""

    head: Org
    branches: tuple[Org, ...]
    items: tuple[Item, ...]
    department: Department
    city: City
    province: Province

    @property
    def orgs(self) -> tuple[Org, ...]:
        return (self.head, *self.branches)


def build_sender(rng: random.Random, province: Province, index: int) -> Sender:
    """The ``index``-th sender: files cycle through cities, then through departments."""
    city = province.cities[index % len(province.cities)]
    department = DEPARTMENTS[(index // len(province.cities) + index) % len(DEPARTMENTS)]
    head = _org(rng, city.code, city.name + department.name, None)
    branches = tuple(
        _org(rng, code, _branch_name(city, name, department), head.code)
        for code, name in city.counties
    )
    items = tuple(
        Item(f"{city.code}{department.abbr}{template.kind}{n:03d}", template, head)
        for n, template in enumerate(department.items, start=1)
    )
    return Sender(head, branches, items, department, city, province)


def _org(rng: random.Random, division: str, name: str, parent: str | None) -> Org:
    staff = tuple(person_name(rng) for _ in range(_STAFF_PER_ORG))
    return Org(credit_code(rng, "11", division), name, division, parent, staff)


def _branch_name(city: City, county: str, department: Department) -> str:
    # Vertically managed police stations are city branches: 长沙市公安局芙蓉分局
    if department.name == "公安局":
        return f"{city.name}公安局{county[:-1]}分局"
    return county + department.name
