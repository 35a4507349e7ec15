"""How ``exgate validate`` reports: compiler-style text or the pinned JSON shape."""

from __future__ import annotations

import errno
import os
from typing import Any

from schemas.audit import NOT_FOUND, NOT_REGULAR, Summary
from schemas.issues import Issue

__all__ = ["format_issue", "format_summary", "format_unreadable", "summary_json",
           "unreadable_reason"]

# The reasons a path is not read, in Chinese: the validator's own, and the system's
# (``strerror``, English whatever the locale) for the errors a file meets most.
_REASONS_ZH = {
    NOT_FOUND: "文件或文件夹不存在",
    NOT_REGULAR: "不是普通文件或文件夹（如管道、设备），未读取",
    os.strerror(errno.ENOENT): "文件不存在",
    os.strerror(errno.EACCES): "没有读取权限",
    os.strerror(errno.EPERM): "操作不被允许",
    os.strerror(errno.EISDIR): "是文件夹而不是文件",
    os.strerror(errno.EIO): "读取时发生输入输出错误",
    os.strerror(errno.ELOOP): "符号链接层数过多",
    os.strerror(errno.ENAMETOOLONG): "文件名过长",
    os.strerror(errno.ENOTDIR): "路径中有一部分不是文件夹",
    os.strerror(errno.ESTALE): "网络文件句柄已失效",
    # Reasons a move or a write of the drop folder meets too.
    os.strerror(errno.ENOSPC): "磁盘空间不足",
    os.strerror(errno.EDQUOT): "超出磁盘配额",
    os.strerror(errno.EROFS): "文件系统为只读",
    os.strerror(errno.EBUSY): "文件正被占用",
}


def format_issue(issue: Issue, lang: str = "zh") -> str:
    """``file:line:col: ELEMENT/FIELD: message``, like a compiler; an unknown line or
    column is left out (``file:`` for the whole file), never printed as 0."""
    where = ":".join(
        str(part) for part in (issue.file, issue.line, issue.line and issue.column) if part
    )
    subject = "/".join(part for part in (issue.element, issue.field) if part)
    prefix = f"{where}: {subject}: " if subject else f"{where}: "
    return f"{prefix}{issue.message(lang)} [{issue.code}]"


def unreadable_reason(reason: str, lang: str = "zh") -> str:
    """Why a path was not read, in ``lang``: the system's reasons it has no Chinese for
    are quoted as they are."""
    if lang == "en":
        return reason
    return _REASONS_ZH.get(reason, f"系统错误（{reason}）")


def system_reason(exc: OSError, lang: str = "zh") -> str:
    """Why the system refused a read or a write of a path, in ``lang``."""
    if lang != "en" and exc.errno == errno.EACCES:
        return "权限不足"
    return unreadable_reason(exc.strerror or str(exc), lang)


def format_unreadable(path: str, reason: str, lang: str = "zh") -> str:
    text = unreadable_reason(reason, lang)
    return f"{path}: 无法读取：{text}" if lang == "zh" else f"{path}: cannot read: {text}"


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
            {"file": str(path), "reason": unreadable_reason(reason, lang)}
            for path, reason in summary.unreadable
        ],
    }
