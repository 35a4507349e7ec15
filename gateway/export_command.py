"""``exgate export`` and ``exgate audit verify``: the auditors' commands.

Exit codes: export 0 written, 2 an option refused, configuration error or store
unreachable;
audit verify 0 ok, 1 mismatch or invalid file, 2 the folder is missing, no folder or
unreadable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from adapters.stores.sql import SqlStore
from gateway.audit_verify import VerifyReport, verify_export
from gateway.cli_support import check_folder, gateway_config_path, parse_moment, say
from gateway.config import load_config
from gateway.export import (
    DEFAULT_MAX_RECORDS,
    ExportQuery,
    ExportResult,
    check_query,
    export_store,
)
from schemas.audit import FileResult
from schemas.audit_report import format_issue, format_summary, summary_json
from schemas.errors import ConfigError, ExgateError

__all__ = ["DEFAULT_MAX_RECORDS", "run_audit_verify", "run_export"]

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def run_export(config_path: Path | None, out_dir: Path, division: str | None,
               since: str | None, until: str | None, elements: Sequence[str],
               max_records: int, org: str | None, lang: str) -> int:
    try:
        config = load_config(gateway_config_path(config_path))
        query = ExportQuery(division or config.division, parse_moment(since),
                            parse_moment(until), tuple(e.upper() for e in elements),
                            max_records, org, whole_store=division is None)
        check_query(query, config.division)
        query.element_codes()
        store = SqlStore(config.store_url, create=False)  # it only reads: never a new one
        try:
            with _progress(sys.stdout.isatty(), lang) as progress:
                result = export_store(store, query, out_dir, on_total=progress.total,
                                      on_record=progress.advance)
        finally:
            store.close()
    except ExgateError as exc:
        detail = exc.message(lang)
        click.echo(say(lang, f"错误：{detail}", f"error: {detail}"), err=True)
        return EXIT_USAGE
    _print_export(result, lang)
    return EXIT_OK


def _print_export(result: ExportResult, lang: str) -> None:
    for item in result.files:
        click.echo(f"{item.name}  {item.records}  sha256 {item.sha256}")
    counts = ", ".join(f"{k} {v}" for k, v in result.by_element.items())
    click.echo(say(lang, f"已导出 {result.records} 条记录，{len(result.files)} 个文件 → "
                         f"{result.out_dir}（清单 {result.manifest.name}）",
                   f"exported {result.records} records in {len(result.files)} files to "
                   f"{result.out_dir} (manifest {result.manifest.name})")
               + (f": {counts}" if counts else ""))


class _Bar:
    """A rich bar over the records, or nothing when the output is not a terminal."""

    def __init__(self, show: bool, lang: str) -> None:
        self._progress = Progress(TextColumn(say(lang, "导出", "exporting")), BarColumn(),
                                  MofNCompleteColumn(), console=Console(stderr=True),
                                  transient=True) if show else None
        self._task = None if self._progress is None else \
            self._progress.add_task("export", total=None)

    def total(self, count: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=count)

    def advance(self, count: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)


@contextmanager
def _progress(show: bool, lang: str) -> Iterator[_Bar]:
    bar = _Bar(show, lang)
    if bar._progress is None:
        yield bar
        return
    with bar._progress:
        yield bar


# -- audit verify ------------------------------------------------------------------------


def run_audit_verify(folder: Path, output: str, lang: str) -> int:
    try:
        check_folder(folder, "export folder", "导出目录")
    except ConfigError as exc:
        click.echo(exc.message(lang), err=True)
        return EXIT_USAGE
    text = output == "text"
    report = verify_export(folder, (lambda r: _print_file(r, lang)) if text else None)
    if text:
        _print_report(report, lang)
    else:
        data = summary_json(report.summary, lang)
        data["mismatches"] = [m.to_json(lang) for m in report.mismatches]
        data["ok"] = report.ok
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    return EXIT_OK if report.ok else EXIT_MISMATCH


def _print_file(result: FileResult, lang: str) -> None:
    for issue in result.issues:
        click.echo(format_issue(issue, lang))


_CODES_ZH = {"bad-manifest": "清单无效", "missing-file": "缺少文件", "extra-file": "多余文件",
             "sha256-mismatch": "哈希不符", "count-mismatch": "记录数不符"}


def _print_report(report: VerifyReport, lang: str) -> None:
    for m in report.mismatches:
        label = m.code if lang == "en" else f"{_CODES_ZH.get(m.code, m.code)} {m.code}"
        click.echo(f"{report.folder / m.file}: {label}: {m.message(lang)}")
    click.echo(format_summary(report.summary, lang))
    if report.ok:
        click.echo(say(lang, "清单核对通过：哈希、记录数一致，全部文件校验合格",
                       "manifest verified: hashes and counts match, every file is valid"))
    else:
        click.echo(say(lang, f"核对未通过：清单不符 {len(report.mismatches)} 处，不合格文件 "
                             f"{report.summary.invalid_files} 个",
                       f"verification failed: {len(report.mismatches)} manifest "
                       f"mismatch(es), {report.summary.invalid_files} invalid file(s)"))
