"""One approval case from application to pick-up, as the records a legacy system sends.

SBXX 申办 → SBCL materials → YSL sometimes → SL 受理 → SPGC 承办/审核/批准, with
BZGZ/BZSL supplements and TBCXSQ/TBCXJG special procedures sometimes → BJ 办结 → SF
when the item charges → LQDJ when a certificate is issued. Times only move forward,
mostly within office hours, in one of the three legal notations per record.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from schemas.samples import vocab
from schemas.samples.identity import format_time_as, time_notation
from schemas.samples.parties import Applicant, applicant_for
from schemas.samples.world import Item, Org, Sender

__all__ = ["CaseBuilder", "Draft"]

Draft = tuple[str, dict[str, str]]  # element code, fields
_Fields = Mapping[str, str | datetime]  # times are formatted when the record is added

_STEPS = (("1", "承办"), ("2", "审核"), ("3", "批准"))
_DAY_MINUTES = 24 * 60


class CaseBuilder:
    """Builds cases for one sender; ``until`` bounds every time it writes."""

    def __init__(self, rng: random.Random, sender: Sender, until: datetime, serial_base: int):
        self.rng = rng
        self.sender = sender
        self.until = until
        self.serial_base = serial_base
        self._earliest = until - timedelta(days=300)
        self._span_minutes = 240 * _DAY_MINUTES  # cases start 60 to 300 days back

    def build(self, number: int) -> list[Draft]:
        """Every record of case ``number``, in lifecycle order."""
        rng = self.rng
        org = rng.choice(self.sender.orgs)
        item = rng.choice(self.sender.items)
        offset = timedelta(minutes=rng.randrange(self._span_minutes))
        start = self.office_hours(self._earliest + offset)
        case = _Case(self, org, item, applicant_for(rng, item.template, org.division, start),
                     f"{org.division}{start:%Y%m%d}{self.serial_base + number:08d}", start)
        return case.run()

    def office_hours(self, moment: datetime) -> datetime:
        """Move a time into office hours (09:00 to 17:30, Monday to Friday)."""
        minutes = moment.hour * 60 + moment.minute
        if minutes < 9 * 60 or minutes > 17 * 60 + 30:
            moment = moment.replace(hour=9, minute=self.rng.randrange(60), second=0)
            if minutes > 17 * 60 + 30:
                moment += timedelta(days=1)
        while moment.weekday() >= 5:
            moment += timedelta(days=1)
        return moment


class _Case:
    """The mutable walk through one case: its clock and the records so far."""

    def __init__(self, builder: CaseBuilder, org: Org, item: Item, applicant: Applicant,
                 serial: str, start: datetime):
        self.b = builder
        self.rng = builder.rng
        self.org = org
        self.item = item
        self.applicant = applicant
        self.serial = serial
        self.clock = start
        self.records: list[Draft] = []

    def run(self) -> list[Draft]:
        self._application()
        if self._pre_acceptance() and self._acceptance():
            agreed = self._steps()
            self._completion(agreed)
        return self.records

    # -- helpers ------------------------------------------------------------------------

    def _advance(self, low: int, high: int) -> datetime:
        """Move the clock forward ``low`` to ``high`` minutes, into office hours."""
        self.clock = self.b.office_hours(self.clock + timedelta(minutes=self.rng.randint(low, high),
                                                           seconds=self.rng.randrange(60)))
        return self.clock

    def _add(self, element: str, fields: _Fields) -> None:
        """Add a record; the legacy system stamps it (GXSJ) just after the clock."""
        notation = time_notation(self.rng)
        updated = self.clock + timedelta(seconds=self.rng.randint(1, 300))
        record = {
            "XZQHDM": self.org.division, "TYSHXYDM": self.org.code, "SJBBH": "1",
            "GXSJ": format_time_as(updated, notation), "SBLSH": self.serial,
        }
        for name, value in fields.items():
            record[name] = format_time_as(value, notation) if isinstance(value, datetime) else value
        self.records.append((element, record))

    def _staff(self) -> str:
        return self.rng.choice(self.org.staff)

    # -- the lifecycle ------------------------------------------------------------------

    def _application(self) -> None:
        a, t = self.applicant, self.clock
        self._add("SBXX", {
            "SXBM": self.item.code, "SQRLX": a.kind, "SQRMC": a.name, "SQRZJLX": a.id_type,
            "SQRZJHM": a.id_number, "SBSJ": t, "TJFS": a.channel,
        })
        materials = self.item.template.materials
        for number, name in enumerate(materials[: self.rng.randint(2, len(materials))], 1):
            fields = {"CLXH": str(number), "CLMC": name, "CLLX": self.rng.choice("0112"),
                      "CLSL": str(self.rng.randint(1, 3))}
            if fields["CLLX"] == "2":
                fields["CLHASH"] = f"{self.rng.getrandbits(256):064x}"
            self._add("SBCL", fields)

    def _pre_acceptance(self) -> bool:
        """Online applications are pre-checked; a refusal ends the case."""
        if self.applicant.channel != "2" and self.rng.random() > 0.1:
            return True
        draw = self.rng.random()
        status = "2" if draw < 0.05 else "3" if draw < 0.15 else "1"
        fields: dict[str, str | datetime] = {
            "YSLZT": status, "YSLSJ": self._advance(10, 600), "BLRXM": self._staff(),
        }
        if status == "2":
            fields["BSLYY"] = self.rng.choice(vocab.REFUSALS)
        self._add("YSL", fields)
        if status == "3":
            self._supplement()
        return status != "2"

    def _acceptance(self) -> bool:
        draw = self.rng.random()
        status = "2" if draw < 0.03 else "4" if draw < 0.05 else "3" if draw < 0.08 else "1"
        cnsx, unit = self.item.template.promised
        fields: dict[str, str | datetime] = {
            "SLZT": status, "SLBMMC": self.org.name, "SLBM": self.org.code,
            "BLRXM": self._staff(), "SLSJ": self._advance(5, 2 * _DAY_MINUTES),
            "CNSX": str(cnsx), "CNSXDW": unit,
        }
        if status in ("2", "4"):
            fields["BSLYY"] = self.rng.choice(vocab.REFUSALS)
        self._add("SL", fields)
        if status == "3":
            self._supplement()
        return status in ("1", "3")

    def _steps(self) -> bool:
        """承办, 审核, 批准; supplements after 承办 and a special procedure after 审核."""
        agreed = True
        for number, (code, name) in enumerate(_STEPS, 1):
            moment = self._advance(30, 3 * _DAY_MINUTES)
            agreed = not (code == "3" and self.rng.random() < 0.04)
            opinion = self.rng.choice(vocab.OPINIONS[code]) if agreed else vocab.DISAGREE
            self._add("SPGC", {
                "BZH": str(number), "HJDM": code, "HJMC": name, "SPRXM": self._staff(),
                "SPYJ": opinion, "SPSJ": moment, "HJZT": "1" if agreed else "0",
            })
            if code == "1" and self.rng.random() < 0.08:
                self._supplement()
            if code == "2" and self.rng.random() < 0.06:
                self._special_procedure()
        return agreed

    def _supplement(self) -> None:
        materials = self.item.template.materials
        wanted = "、".join(self.rng.sample(materials, self.rng.randint(1, min(2, len(materials)))))
        self._add("BZGZ", {
            "BZGZYY": self.rng.choice(vocab.SUPPLEMENT_REASONS), "BZCLQD": wanted,
            "BZGZSJ": self._advance(10, 240), "GZRXM": self._staff(),
        })
        self._add("BZSL", {
            "BZCLQD": wanted, "BZSLSJ": self._advance(_DAY_MINUTES, 8 * _DAY_MINUTES),
            "BLRXM": self._staff(),
        })

    def _special_procedure(self) -> None:
        kind = "A" if self.rng.random() < 0.5 else "B"
        length, unit = (str(self.rng.randint(5, 15)), "G") if kind == "A" else ("20", "Z")
        self._add("TBCXSQ", {
            "XH": "1", "TBCXZL": kind, "TBCXKSSJ": self._advance(30, 600), "TBCXSX": length,
            "TBCXSXDW": unit, "TBCXLY": self.rng.choice(vocab.SPECIAL_REASONS[kind]),
            "PZRXM": self.org.staff[0],
        })
        self._add("TBCXJG", {
            "XH": "1", "TBCXJG": self.rng.choice(vocab.SPECIAL_RESULTS),
            "TBCXJSSJ": self._advance(2 * _DAY_MINUTES, 12 * _DAY_MINUTES),
        })

    def _completion(self, agreed: bool) -> None:
        template = self.item.template
        result = "1" if not agreed else "0" if template.certificate else "6"
        fields: dict[str, str | datetime] = {
            "BJJG": result, "BJJGMS": vocab.COMPLETION_TEXT[result],
            "BJSJ": self._advance(10, _DAY_MINUTES), "BJBM": self.org.code,
        }
        if result == "0" and template.certificate:
            fields["ZJMC"] = template.certificate
            fields["ZJBH"] = f"{self.item.org.division[:4]}{self.clock:%Y}{self.serial[-8:]}"
        self._add("BJ", fields)
        if result == "1":
            return
        if template.fee:
            basis, amount = template.fee
            self._add("SF", {
                "JKDH": f"{self.org.division}{self.clock:%y%m%d}{self.serial[-8:]}",
                "SFJE": amount, "SFBZ": basis, "SFSJ": self._advance(5, 120),
                "SFRXM": self._staff(),
            })
        if result == "0":
            mode = self.rng.choice("1112239")
            taker = self.applicant.contact if mode != "3" else self.applicant.name
            self._add("LQDJ", {
                "LQFS": mode, "LQRXM": taker,
                "LQSJ": self._advance(60, 6 * _DAY_MINUTES),
            })

