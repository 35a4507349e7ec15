"""``exgate validate``: run the auditors' check and print it for people or scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from schemas.audit import FileResult, expand_paths, validate_paths
from schemas.audit_report import format_issue, format_summary, format_unreadable, summary_json
from schemas.catalog import known_namespaces
from schemas.reader import Limits

__all__ = ["run_validate"]

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
_PROGRESS_MIN_FILES = 20
_PROGRESS_MIN_BYTES = 20 * 1024 * 1024


def run_validate(
    paths: tuple[Path, ...], output: str, schema_version: int | None, max_file_mb: int, lang: str
) -> int:
    if schema_version is not None and schema_version not in known_namespaces().values():
        known = ", ".join(str(v) for v in known_namespaces().values())
        message = (
            f"未知的数据规范版本 {schema_version}（支持：{known}）"
            if lang == "zh"
            else f"unknown schema version {schema_version} (known: {known})"
        )
        click.echo(message, err=True)
        return EXIT_USAGE
    limits = Limits.from_megabytes(max_file_mb)
    text = output == "text"
    on_file: Callable[[FileResult], None] | None = (
        (lambda result: _print_file(result, lang)) if text else None
    )
    with _progress_for(paths, show=text and sys.stdout.isatty(), lang=lang) as progress:
        on_bytes = progress.advance_bytes if progress is not None else None
        summary = validate_paths(paths, limits, on_file, on_bytes, schema_version)
    if text:
        for path, reason in summary.unreadable:
            click.echo(format_unreadable(str(path), reason, lang), err=True)
        click.echo(format_summary(summary, lang))
    else:
        click.echo(json.dumps(summary_json(summary, lang), ensure_ascii=False, indent=2))
    if summary.unreadable:
        return EXIT_USAGE
    return EXIT_VALID if summary.invalid_files == 0 else EXIT_INVALID


def _print_file(result: FileResult, lang: str) -> None:
    for issue in result.issues:
        click.echo(format_issue(issue, lang))


class _BytesProgress:
    """A rich progress bar over the total size of the files to check."""

    def __init__(self, total: int, lang: str):
        self._progress = Progress(
            TextColumn("validating" if lang == "en" else "校验"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("validate", total=total)

    def advance_bytes(self, count: int) -> None:
        self._progress.advance(self._task, count)

    def __enter__(self) -> _BytesProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def _progress_for(
    paths: tuple[Path, ...], show: bool, lang: str
) -> AbstractContextManager[_BytesProgress | None]:
    if not show:
        return nullcontext()
    files, _missing = expand_paths(paths)
    total = sum(_size(path) for path in files)
    if len(files) < _PROGRESS_MIN_FILES and total < _PROGRESS_MIN_BYTES:
        return nullcontext()
    return _BytesProgress(total, lang)


def _size(path: Path) -> int:
    """The size for the progress bar; an unreadable file is reported by the run itself."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
