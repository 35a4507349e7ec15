"""Validation throughput: exgate's streaming reader against the raw limit and the naive way.

- exgate: ``DocumentReader`` over the file, XSD and semantic rules, streaming;
- raw limit: bare lxml, ``etree.parse`` of the whole document then ``XMLSchema.validate``;
- naive: ``xmlschema`` validating each record on its own, measured on a few thousand
  records (it is too slow for the whole file) and reported as a rate.

Rates are records per second of this process's CPU time: the three run one after the
other, single-threaded, and CPU time keeps their ratios meaningful on a shared machine
where wall-clock time depends on what else runs. Each is the best of three runs (as
``timeit`` reports), after the schema is compiled: start-up is not throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import xmlschema
from lxml import etree

from bench._data import sample_file
from bench._registry import BenchConfig, Reference, Result, figure, measured_rate
from schemas.catalog import load_catalog
from schemas.reader import DocumentReader

__all__ = ["validation"]


@figure("validation", order=10)  # the foundation's figure: printed first
def validation(config: BenchConfig) -> Result:
    path, records = sample_file(config.workdir, config.records)
    assert load_catalog().fast_checks  # compiled once per process, before any timing
    exgate = _cpu_rate(records, lambda: _exgate(path))
    raw = _cpu_rate(records, lambda: _raw(path))
    texts = _record_texts(path, config.naive_records)
    naive = _cpu_rate(len(texts), _naive(texts))
    size = path.stat().st_size / 1024 / 1024
    return Result(
        "validation", "exgate DocumentReader", exgate, "rec/s",
        (Reference("raw lxml XSD", raw, "rec/s", exgate / raw, "≥ 50%", as_percent=True),
         Reference("naive xmlschema per record", naive, "rec/s", exgate / naive, "≥ 20×")),
        f"{records:,} records, {size:.0f} MB, CPU time; naive on {len(texts):,}",
    )


def _cpu_rate(records: int, run: Callable[[], int]) -> float:
    return max(measured_rate(records, run, time.process_time) for _ in range(_RUNS))


_RUNS = 3


def _exgate(path: Path) -> int:
    reader = DocumentReader(path, path.name)
    valid = sum(1 for check in reader if check.valid)
    if reader.issues or valid != reader.records:
        raise RuntimeError(f"sample file did not validate clean: {reader.issues[:3]}")
    return valid


def _raw(path: Path) -> int:
    schema = load_catalog().xml_schema
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    document = etree.parse(str(path), parser)
    if not schema.validate(document):
        raise RuntimeError(f"raw lxml refused the sample: {schema.error_log}")
    return len(document.getroot()[1])


def _record_texts(path: Path, limit: int) -> list[str]:
    """The first records as standalone XML texts, as a per-record pipeline receives them."""
    body = load_catalog().tag("BODY")
    texts: list[str] = []
    for _, element in etree.iterparse(str(path), events=("end",)):
        parent = element.getparent()
        if parent is not None and parent.tag == body:
            texts.append(etree.tostring(element, encoding="unicode"))
            if len(texts) >= limit:
                break
    return texts


def _naive(texts: list[str]) -> Callable[[], int]:
    schema = xmlschema.XMLSchema(str(load_catalog().path))  # built once, outside the timing

    def run() -> int:
        return sum(1 for text in texts if schema.is_valid(text))

    return run
