"""``exgate audit verify DIR``: an export's manifest against its files, then the XSD.

Checks, in order:

1. ``MANIFEST.json`` is readable and names plain file names only;
2. every listed file exists as a regular file, not a link or a FIFO (else
   ``missing-file``), and nothing else is in the folder (``extra-file``);
3. every file's sha256 (``sha256-mismatch``);
4. every file is read once with the validator ``exgate validate`` uses: its issues,
   and its record counts per element against the manifest (``count-mismatch``).

``import_export`` loads a verified export into a store through the normal ``write``
path, one batch per file (the round trip that proves an export is complete).
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.stores.base import IncomingBatch, Store, WriteResult
from gateway.export import MANIFEST_NAME, file_sha256
from schemas.audit import FileResult, Summary, validate_file
from schemas.errors import RejectedBatch
from schemas.messages import Localized
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.times import BEIJING

__all__ = ["BadManifest", "ImportResult", "Mismatch", "VerifyReport", "import_export",
           "verify_export"]

IMPORT_NODE = "audit-import"
MAX_MANIFEST_BYTES = 64 << 20  # some 200,000 file entries


@dataclass(frozen=True)
class Mismatch:
    """One way the folder differs from its manifest; ``file`` names the file."""

    code: str      # bad-manifest | missing-file | extra-file | sha256-mismatch | count-mismatch
    file: str
    detail: Localized

    def message(self, lang: str = "zh") -> str:
        return self.detail.en if lang == "en" else self.detail.zh

    def to_json(self, lang: str = "zh") -> dict[str, str]:
        """Like ``exgate validate --format json``: the text follows ``--lang``."""
        return {"code": self.code, "file": self.file, "detail": self.message(lang)}


class BadManifest(ValueError):
    """Why ``MANIFEST.json`` cannot be used, in both languages (``str`` is English)."""

    def __init__(self, detail: Localized) -> None:
        super().__init__(detail.en)
        self.detail = detail


@dataclass
class VerifyReport:
    folder: Path
    mismatches: list[Mismatch] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.summary.invalid_files == 0 \
            and not self.summary.unreadable


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest as JSON; ``BadManifest`` (a ``ValueError``) says why it cannot be used."""
    path = folder / MANIFEST_NAME
    try:
        if not _regular(path) or path.stat().st_size > MAX_MANIFEST_BYTES:
            limit = MAX_MANIFEST_BYTES >> 20
            raise BadManifest(Localized(
                f"{MANIFEST_NAME} 不是普通文件，或超过 {limit} MiB",
                f"{MANIFEST_NAME} is not a regular file of at most {limit} MiB"))
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadManifest(Localized(f"缺少 {MANIFEST_NAME}；导出不完整或目录有误",
                                    f"{MANIFEST_NAME} is missing; the export is "
                                    "unfinished or this is not an export folder")) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadManifest(_unreadable(exc)) from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise BadManifest(Localized(f"{MANIFEST_NAME} 没有 files 列表",
                                    f"{MANIFEST_NAME} has no 'files' list"))
    for index, entry in enumerate(files):
        if not _entry_ok(entry):
            raise BadManifest(Localized(
                f"{MANIFEST_NAME} 的 files[{index}] 无效：每项须有不含路径的文件名 name、"
                "文本 sha256，以及 by_element 中各要素的记录数（不小于 0 的整数）",
                f"{MANIFEST_NAME} files[{index}] is not a valid entry: each needs a plain "
                "file name, a sha256 text and by_element record counts (whole numbers, "
                "at least 0)"))
    return dict(data)


def _unreadable(exc: OSError | UnicodeDecodeError | json.JSONDecodeError) -> Localized:
    if isinstance(exc, json.JSONDecodeError):
        return Localized(f"{MANIFEST_NAME} 不是有效的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）",
                         f"{MANIFEST_NAME} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno}")
    if isinstance(exc, UnicodeDecodeError):
        return Localized(f"{MANIFEST_NAME} 不是 UTF-8 编码（第 {exc.start} 字节）",
                         f"{MANIFEST_NAME} is not UTF-8 (byte {exc.start})")
    reason = exc.strerror or str(exc)
    return Localized(f"无法读取 {MANIFEST_NAME}：{reason}",
                     f"{MANIFEST_NAME} is unreadable: {reason}")


def _entry_ok(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    name = entry.get("name")
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST_NAME)
            and "/" not in name and "\\" not in name
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("by_element"), dict)
            and all(isinstance(count, int) and not isinstance(count, bool) and count >= 0
                    for count in entry["by_element"].values()))


def _regular(path: Path) -> bool:
    """A regular file itself: never followed out of the folder by a link, never a FIFO
    or a device that would block or never end."""
    return stat.S_ISREG(path.lstat().st_mode)


def verify_export(folder: Path, on_file: Callable[[FileResult], None] | None = None
                  ) -> VerifyReport:
    report = VerifyReport(folder)
    try:
        manifest = read_manifest(folder)
    except BadManifest as exc:
        report.mismatches.append(Mismatch("bad-manifest", MANIFEST_NAME, exc.detail))
        return report
    entries = {entry["name"]: entry for entry in manifest["files"]}
    present = set(_files_below(folder))
    for name in sorted(present - set(entries) - {MANIFEST_NAME}):
        report.mismatches.append(Mismatch("extra-file", name, Localized(
            "清单中没有列出此文件", "not listed in the manifest")))
    found: Counter[str] = Counter()  # records by element: counted where read, else listed
    for name, entry in entries.items():
        if name not in present:
            report.mismatches.append(Mismatch("missing-file", name, Localized(
                "清单列出了此文件，但目录中没有", "listed but absent")))
        elif not _regular(folder / name):
            report.mismatches.append(Mismatch("missing-file", name, Localized(
                "清单列出了此文件，但它是链接或特殊文件，不是普通文件：未读取",
                "listed, but a link or special file, not a regular file: not read")))
        else:
            found.update(_check_file(folder / name, entry, report, on_file))
            continue
        found.update({str(k): int(v) for k, v in entry["by_element"].items()})
    _check_totals(manifest.get("totals"), len(entries), found, report)
    return report


def _check_totals(totals: Any, files: int, found: Counter[str], report: VerifyReport) -> None:
    """The manifest's ``totals`` against what its files hold (an export without it, such
    as one written by hand, is not held to it)."""
    if totals is None:
        return
    stated = totals if isinstance(totals, dict) else {}
    held = {k: v for k, v in sorted(found.items()) if v}
    elements = stated.get("by_element")
    files_hold = Localized("文件", "files")
    differences = _differences(
        {"files": stated.get("files"), "records": stated.get("records")},
        {"files": files, "records": sum(held.values())}, files_hold)
    differences += _differences(elements, held, files_hold) if isinstance(elements, dict) \
        else _differences({"by_element": elements}, {"by_element": held}, files_hold)
    if differences:
        report.mismatches.append(Mismatch("count-mismatch", MANIFEST_NAME, Localized(
            "清单的 totals 合计与文件不符：" + "；".join(d.zh for d in differences),
            "totals disagree with the files: " + "; ".join(d.en for d in differences))))


def _differences(stated: Mapping[str, Any], found: Mapping[str, Any],
                 holder: Localized) -> list[Localized]:
    """``SL: manifest 34, files 35`` for each key whose counts differ; a key either side
    leaves out counts 0 (an export lists only the elements it holds)."""
    out = []
    for key in dict.fromkeys([*stated, *found]):
        said, held = stated.get(key, 0), found.get(key, 0)
        if said != held or type(said) is not type(held):
            said_text, held_text = _count_text(said), _count_text(held)
            name = _COUNTED.get(key) or Localized(key, key)  # else an element's code
            out.append(Localized(
                f"{name.zh}: 清单 {said_text.zh}，{holder.zh} {held_text.zh}",
                f"{name.en}: manifest {said_text.en}, {holder.en} {held_text.en}"))
    return out


_COUNTED = {"files": Localized("文件数", "file count"), "records": Localized("记录数", "records"),
            "by_element": Localized("各要素记录数", "by_element")}


def _count_text(value: Any) -> Localized:
    """A count as the manifest states it: a missing one, or one that is no number, shows."""
    if value is None:
        return Localized("缺失", "missing")
    if isinstance(value, int) and not isinstance(value, bool):
        return Localized(str(value), str(value))
    text = json.dumps(value, ensure_ascii=False)
    return Localized(text, text)


def _files_below(folder: Path) -> Iterator[str]:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            yield str((Path(root) / name).relative_to(folder))


def _check_file(path: Path, entry: dict[str, Any], report: VerifyReport,
                on_file: Callable[[FileResult], None] | None) -> Counter[str]:
    """Checks one listed file against its entry; returns its records by element."""
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        listed = str(entry["sha256"])[:16]
        report.mismatches.append(Mismatch("sha256-mismatch", path.name, Localized(
            f"文件的 sha256 为 {digest[:16]}…，与清单中的 {listed}… 不符：文件已被改动",
            f"sha256 {digest[:16]}… differs from the manifest's {listed}…: the file "
            "was changed")))
    result, counts = _validate(path)
    report.summary.add(result)
    if on_file is not None:
        on_file(result)
    expected = {str(k): int(v) for k, v in entry["by_element"].items() if int(v)}
    differences = _differences({"records": entry.get("records", counts.total())},
                               {"records": counts.total()}, Localized("文件", "file"))
    differences += _differences(expected, counts, Localized("文件", "file"))
    if differences:
        report.mismatches.append(Mismatch("count-mismatch", path.name, Localized(
            "记录数与清单不符：" + "；".join(d.zh for d in differences),
            "record counts differ from the manifest: "
            + "; ".join(d.en for d in differences))))
    return counts


def _validate(path: Path) -> tuple[FileResult, Counter[str]]:
    """``schemas.audit.validate_file`` (its cap on issues too), counting records per
    element on the way."""
    counts: Counter[str] = Counter()
    result = validate_file(path, on_record=lambda check: counts.update((check.element,)))
    return result, counts


# -- round trip ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    files: int
    records: int
    stored: int
    duplicates: int
    conflicts: int


def import_export(folder: Path, store: Store, *, node_id: str = IMPORT_NODE) -> ImportResult:
    """Write every file of a verified export into ``store``, one batch per file.

    Refuses (``RejectedBatch``) an export that does not verify. Idempotent: the batch ID
    is the file's HEAD/BATCHID, so importing twice changes nothing.
    """
    report = verify_export(folder)
    if not report.ok:
        first = report.mismatches[0].message("en") if report.mismatches else "invalid records"
        raise RejectedBatch(f"export {folder} does not verify: {first}")
    totals = [0, 0, 0, 0]
    files = read_manifest(folder)["files"]
    for entry in files:
        result, count = _import_file(folder / entry["name"], entry["sha256"], store, node_id)
        new = (0, count, 0) if result.redelivered else \
            (result.stored, result.duplicates, result.conflict_count)
        for i, value in enumerate((count, *new)):
            totals[i] += value
    return ImportResult(len(files), *totals)


def _import_file(path: Path, sha256: str, store: Store, node_id: str
                 ) -> tuple[WriteResult, int]:
    reader = DocumentReader(path, path.name)
    records: list[Record] = [check.record for check in reader if check.record is not None]
    head = reader.head
    if head is None or head.division is None:
        raise RejectedBatch(f"{path.name}: no HEAD")
    batch = IncomingBatch(head.batch_id or path.stem, node_id, head.division, sha256,
                          records, datetime.now(BEIJING), head.schema_version)
    return store.write(batch), len(records)
