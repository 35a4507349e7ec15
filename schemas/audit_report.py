"""How ``exgate validate`` reports: compiler-style text or the pinned JSON shape."""

from __future__ import annotations

from typing import Any

from schemas.audit import Summary
from schemas.issues import Issue

__all__ = ["format_issue", "format_summary", "format_unreadable", "summary_json"]


def format_issue(issue: Issue, lang: str = "zh") -> str:
    """``file:line:col: ELEMENT/FIELD: message``, like a compiler."""
    where = f"{issue.file}:{issue.line or 0}:{issue.column or 0}"
    subject = "/".join(part for part in (issue.element, issue.field) if part)
    prefix = f"{where}: {subject}: " if subject else f"{where}: "
    return f"{prefix}{issue.message(lang)} [{issue.code}]"


def format_unreadable(path: str, reason: str, lang: str = "zh") -> str:
    return f"{path}: 无法读取：{reason}" if lang == "zh" else f"{path}: cannot read: {reason}"


def format_summary(summary: Summary, lang: str = "zh") -> str:
    codes = ", ".join(f"{code} {n}" for code, n in sorted(summary.by_code.items()))
    errors = sum(summary.by_code.values())
    if lang == "en":
        line = (
            f"checked {summary.files} files ({summary.valid_files} valid, "
            f"{summary.invalid_files} invalid), {summary.records} records "
            f"({summary.valid_records} valid), {errors} errors"
        )
        if summary.unreadable:
            line += f", {len(summary.unreadable)} unreadable"
    else:
        line = (
            f"共检查 {summary.files} 个文件（合格 {summary.valid_files}，不合格 "
            f"{summary.invalid_files}），记录 {summary.records} 条（合格 "
            f"{summary.valid_records}），错误 {errors} 个"
        )
        if summary.unreadable:
            line += f"，无法读取 {len(summary.unreadable)} 个"
    return f"{line}{': ' if lang == 'en' and codes else '：' if codes else ''}{codes}"


def summary_json(summary: Summary, lang: str = "zh") -> dict[str, Any]:
    """The shape pinned by design §8, plus record counts and counts by code."""
    errors: list[dict[str, Any]] = [
        issue.to_json(lang) for result in summary.results for issue in result.issues
    ]
    return {
        "files": summary.files,
        "valid": summary.valid_files,
        "invalid": summary.invalid_files,
        "errors": errors,
        "records": {"total": summary.records, "valid": summary.valid_records},
        "by_code": dict(sorted(summary.by_code.items())),
        "unreadable": [
            {"file": str(path), "reason": reason} for path, reason in summary.unreadable
        ],
    }
