"""Generating sample exchange files, streamed, with an optional list of injected defects."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from schemas.catalog import load_catalog
from schemas.issues import IssueCode
from schemas.samples.defects import DefectInjector
from schemas.samples.identity import format_time_as
from schemas.samples.lifecycle import CaseBuilder, Draft
from schemas.samples.places import Province
from schemas.samples.places import province as find_province
from schemas.samples.world import Sender, build_sender
from schemas.writer import DocumentWriter, Layout

__all__ = ["DEFAULT_SEED", "DEFAULT_UNTIL", "DEFECTS_FILE", "Defect", "SampleFile", "SampleSet",
           "generate"]

DEFAULT_SEED = 20261120
# A fixed horizon keeps output identical for a seed whenever it runs; every time lies
# before it, so nothing is "in the future" for the validator.
DEFAULT_UNTIL = datetime(2026, 11, 1, 8, 0, 0)
DEFECTS_FILE = "DEFECTS.json"
_CASES_PER_SERIAL_BLOCK = 10_000_000


@dataclass(frozen=True, slots=True)
class Defect:
    """One injected defect, located as the validator reports it."""

    file: str
    line: int
    element: str
    field: str | None
    code: str
    kind: str

    def key(self) -> tuple[str, int, str, str | None, str]:
        """(file, line, element, field, code): what a validator report is compared on."""
        return (self.file, self.line, self.element, self.field, self.code)


@dataclass(frozen=True, slots=True)
class SampleFile:
    name: str
    path: Path
    division: str
    sender: str
    cases: int
    records: int
    bytes: int


@dataclass(frozen=True)
class SampleSet:
    """What ``generate`` wrote: files, record counts per element, injected defects."""

    out_dir: Path
    encoding: str
    seed: int
    province: str
    files: tuple[SampleFile, ...]
    elements: Mapping[str, int]
    defects: tuple[Defect, ...] = field(default=())

    @property
    def cases(self) -> int:
        return sum(f.cases for f in self.files)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def defects_path(self) -> Path:
        return self.out_dir / DEFECTS_FILE


def generate(
    out_dir: Path | str,
    *,
    cases: int = 100,
    encoding: str = "UTF-8",
    invalid_rate: float = 0.0,
    seed: int = DEFAULT_SEED,
    files: int = 1,
    province: str = "430000",
    layout: Layout = Layout.INDENTED,
    until: datetime = DEFAULT_UNTIL,
) -> SampleSet:
    """Write ``cases`` whole cases over ``files`` files in ``out_dir``, plus DEFECTS.json.

    About ``invalid_rate`` of the records carry exactly one injected defect each; the
    same seed gives the same cases whatever the rate. ``until`` (Beijing time, naive)
    bounds every generated time.
    """
    if not 0.0 <= invalid_rate <= 1.0:
        raise ValueError(f"invalid_rate must be between 0 and 1, got {invalid_rate}")
    if cases < 0 or files < 1:
        raise ValueError(f"need cases >= 0 and files >= 1, got cases={cases}, files={files}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = _Plan(out, seed, find_province(province), encoding, invalid_rate, layout, until)
    elements: Counter[str] = Counter()
    written: list[SampleFile] = []
    defects: list[Defect] = []
    for index in range(files):
        share = cases // files + (1 if index < cases % files else 0)
        written.append(_FileJob(plan, index, share).run(elements, defects))
    (out / DEFECTS_FILE).write_text(json.dumps(
        {"seed": seed, "invalid_rate": invalid_rate, "defects": [asdict(d) for d in defects]},
        ensure_ascii=False, indent=1), encoding="utf-8")
    return SampleSet(out, encoding, seed, province, tuple(written), dict(elements),
                     tuple(defects))


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every file of one run shares."""

    out: Path
    seed: int
    province: Province
    encoding: str
    invalid_rate: float
    layout: Layout
    until: datetime


class _FileJob:
    """One file: its sender, its cases, its defects.

    Each file has its own random streams, derived from the seed and the file's index,
    so a file's content does not depend on how many files come before it.
    """

    def __init__(self, plan: _Plan, index: int, cases: int):
        self.rng = random.Random(f"{plan.seed}/{index}")
        self.defect_rng = random.Random(f"{plan.seed}/{index}/defects")
        self.sender: Sender = build_sender(self.rng, plan.province, index)
        self.name = f"{index + 1:04d}-{self.sender.head.division}-{self.sender.department.abbr}.xml"
        self.path = plan.out / self.name
        self.cases = cases
        self.index = index
        self.encoding = plan.encoding
        self.rate = plan.invalid_rate
        self.layout = plan.layout
        self.until = plan.until
        self.catalog = load_catalog()
        self.injector = DefectInjector(self.defect_rng, self.catalog, self.sender.province,
                                       self.sender.city.code)

    def run(self, elements: Counter[str], defects: list[Defect]) -> SampleFile:
        head = {"XZQHDM": self.sender.head.division, "TYSHXYDM": self.sender.head.code,
                "CREATED": format_time_as(self.until, 0), "BATCHID": f"S{self.index + 1:04d}"}
        builder = CaseBuilder(self.rng, self.sender, self.until,
                              self.index * _CASES_PER_SERIAL_BLOCK)
        with DocumentWriter(self.path, head, encoding=self.encoding, layout=self.layout,
                            catalog=self.catalog) as writer:
            for draft in self._reference_records():
                self._emit(writer, draft, elements, defects)
            for number in range(self.cases):
                for draft in builder.build(number):
                    self._emit(writer, draft, elements, defects)
            records = writer.records
        return SampleFile(self.name, self.path, self.sender.head.division, self.sender.head.name,
                          self.cases, records, self.path.stat().st_size)

    def _reference_records(self) -> list[Draft]:
        """The organisations and items the cases refer to, stamped a year before ``until``."""
        stamp = format_time_as(self.until.replace(year=self.until.year - 1), 0)
        drafts: list[Draft] = []
        for org in self.sender.orgs:
            fields = {"XZQHDM": org.division, "TYSHXYDM": org.code, "SJBBH": "1", "GXSJ": stamp,
                      "JGMC": org.name}
            if org.parent:
                fields["SJJGDM"] = org.parent
            drafts.append(("JGXX", fields))
        for item in self.sender.items:
            t = item.template
            fields = {"XZQHDM": item.org.division, "TYSHXYDM": item.org.code, "SJBBH": "1",
                      "GXSJ": stamp, "SXBM": item.code, "SXMC": t.name, "SXLX": t.kind,
                      "FDSX": str(t.legal[0]), "FDSXDW": t.legal[1], "CNSX": str(t.promised[0]),
                      "CNSXDW": t.promised[1], "SFSF": "1" if t.fee else "0"}
            if t.fee:
                fields["SFYJ"] = t.fee[0]
            drafts.append(("SXXX", fields))
        return drafts

    def _emit(self, writer: DocumentWriter, draft: Draft, elements: Counter[str],
              defects: list[Defect]) -> None:
        element, fields = draft
        elements[element] += 1
        if not self.rate or self.defect_rng.random() >= self.rate:
            writer.write(draft)
            return
        kind = self.injector.choose(element, fields)
        if kind is IssueCode.DUPLICATE_RECORD:
            writer.write(draft)  # the first copy is valid; the second one conflicts
            elements[element] += 1
        injection = self.injector.inject(kind, element, fields)
        landed = writer.write_unchecked(injection.element, injection.fields)
        line = landed.field_lines[injection.field] if injection.at_field and injection.field \
            else landed.line
        defects.append(Defect(self.name, line, element, injection.field, str(injection.code),
                              injection.kind))
