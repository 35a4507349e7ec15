"""User-facing validation messages, Simplified Chinese first, English second.

Each message says what is wrong with the quoted value and, where it helps, what to do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from rich.cells import cell_len

__all__ = ["LANGUAGES", "Localized", "OneLineFormatter", "columns", "one_line", "render",
           "said"]

LANGUAGES = ("zh", "en")

_MESSAGES: dict[str, tuple[str, str]] = {
    "empty-file": (
        "文件为空（0 字节或只有空白）",
        "the file is empty (0 bytes or only white space)",
    ),
    "file-too-large": (
        "文件大小 {size} 字节超过上限 {limit} 字节；请拆分后重新投递",
        "the file is {size} bytes, over the cap of {limit} bytes; split it and drop the parts",
    ),
    "text-too-large": (
        "文本节点超过上限 {limit} 字节",
        "a text node is over the cap of {limit} bytes",
    ),
    "too-large": (
        "{what}超过解析器 {limit} 字节的上限",
        "{what} is over the parser's cap of {limit} bytes",
    ),
    "encoding-error": (
        "字节与声明的编码 {encoding} 不符：{detail}",
        "the bytes do not match the declared encoding {encoding}: {detail}",
    ),
    "undecodable-bytes": (
        "字节 {data} 不是声明的编码 {encoding} 中的字符；"
        "请按该编码重新导出，或在 XML 声明中写明实际编码",
        "the bytes {data} are no character of the declared encoding {encoding}; "
        "export the file again in that encoding, or declare the one it is in",
    ),
    "utf8-under-legacy-label": (
        "文件声明的编码是 {encoding}，但其字节是 UTF-8（按 UTF-8 读作“{text}”），按声明读取"
        "中文会成为乱码，故整个文件未读取；请在 XML 声明中写 encoding=\"UTF-8\"，或按 "
        "{encoding} 重新导出",
        "the file declares the encoding {encoding} but its bytes are UTF-8 (read as UTF-8: "
        "\"{text}\"), and read as declared its Chinese would be garbled, so no record was "
        "read; declare encoding=\"UTF-8\", or export it again in {encoding}",
    ),
    "malformed-xml": ("XML 格式不正确：{detail}", "the document is not well-formed XML: {detail}"),
    "too-deep": (
        "元素嵌套超过 {limit} 层（交换记录只有 4 层）",
        "elements are nested more than {limit} levels deep (an exchange record has 4)",
    ),
    "unescaped-ampersand": (
        "值中的 & 未转义；请写作 &amp;",
        "unescaped & in a value; write it as &amp;",
    ),
    "records-not-read": (
        "。读取在第 {line} 行第 {column} 列中止，该处的记录及其后的记录均未检查；"
        "请修正后重新投递整个文件（此前已接收的记录再次投递时按重复忽略）",
        ". Reading stopped at line {line}, column {column}: the record there and every "
        "record after it were not checked; fix the file and drop it again whole (records "
        "already taken are ignored as duplicates)",
    ),
    "records-not-read-line": (
        "。读取在第 {line} 行中止，该行的记录及其后的记录均未检查；"
        "请修正后重新投递整个文件（此前已接收的记录再次投递时按重复忽略）",
        ". Reading stopped at line {line}: the records on it and after it were not checked; "
        "fix the file and drop it again whole (records already taken are ignored as "
        "duplicates)",
    ),
    "forbidden-dtd": (
        "禁止使用 DOCTYPE/DTD 或实体引用（{detail}）；请删除后重新投递",
        "DOCTYPE/DTD declarations and entity references are not allowed ({detail}); remove them",
    ),
    "wrong-root": (
        "根元素应为 {{urn:exgate:exchange:N}}EXCHANGE，实际为 {found}",
        "the root must be {{urn:exgate:exchange:N}}EXCHANGE, found {found}",
    ),
    "unknown-schema-version": (
        "未知的数据规范版本 {found}；本网关支持：{known}",
        "unknown schema version {found}; this gateway knows: {known}",
    ),
    "version-attribute": (
        "EXCHANGE/@version 为 {found}，与命名空间的版本 {expected} 不一致",
        "EXCHANGE/@version is {found} but the namespace is version {expected}",
    ),
    "missing-version": (
        "EXCHANGE 缺少必需的 version 属性；应写 version=\"{expected}\"",
        "EXCHANGE lacks its required version attribute; write version=\"{expected}\"",
    ),
    "wrong-namespace": (
        "{found} 的命名空间应为 {expected}，实际为{namespace}；其内容未读取",
        "{found} is in {namespace}, expected namespace {expected}; its content was not read",
    ),
    "version-not-requested": (
        "文件为第 {found} 版数据规范，而要求的是第 {expected} 版",
        "the file is schema version {found}, but version {expected} was requested",
    ),
    "unknown-element": (
        "BODY 下的 {found} 不是 14 类交换要素之一",
        "{found} under BODY is not one of the 14 exchange elements",
    ),
    "misplaced-element": (
        "EXCHANGE 下应依次为 HEAD、BODY，发现 {found}",
        "EXCHANGE must hold HEAD then BODY, found {found}",
    ),
    "missing-head": ("缺少 HEAD 报文头", "the HEAD is missing"),
    "missing-body": (
        "缺少 BODY 报文体；记录应写在 HEAD 之后的 BODY 中",
        "the BODY is missing; records belong in a BODY after the HEAD",
    ),
    "more-attributes": (
        "{element} 另带 {count} 个不允许的属性；请全部删除",
        "{element} carries {count} more attributes it may not carry; remove them all",
    ),
    "root-attribute": (
        "EXCHANGE 只能带 version 属性，发现 {attribute}；请删除",
        "EXCHANGE may carry only the version attribute, found {attribute}; remove it",
    ),
    "stray-text": (
        "{where} 中记录之外有文字 “{value}”；请删除",
        "{where} holds the text '{value}' outside the records; remove it",
    ),
    "unexpected-attribute": (
        "{element}（{element_label}）不能带属性 {attribute}；请删除",
        "{element} ({element_label}) must not carry the attribute {attribute}; remove it",
    ),
    "unexpected-text": (
        "{element}（{element_label}）的字段之外有文字 “{value}”；文字只能写在字段内",
        "{element} ({element_label}) holds the text '{value}' outside its fields; "
        "text belongs inside a field",
    ),
    "missing-field": (
        "缺少必填字段 {field}（{label}）",
        "required field {field} ({label}) is missing",
    ),
    "unexpected-field": (
        "{element}（{element_label}）没有字段 {field}",
        "{element} ({element_label}) has no field {field}",
    ),
    "repeated-field": ("字段 {field} 重复出现", "field {field} appears more than once"),
    "bad-value": (
        "{field}（{label}）的值 “{value}” 不合规：{detail}",
        "{field} ({label}) value '{value}' is invalid: {detail}",
    ),
    "bad-check-digit-credit": (
        "{field}（{label}）“{value}” 的校验码错误（GB 32100）",
        "{field} ({label}) '{value}' fails the GB 32100 check character",
    ),
    "bad-check-digit-id": (
        "{field}（{label}）“{value}” 的校验码错误（GB 11643）",
        "{field} ({label}) '{value}' fails the GB 11643 check character",
    ),
    "credit-code-length": (
        "{field}（{label}）“{value}” 为 {length} 位；统一社会信用代码应为 18 位（GB 32100）",
        "{field} ({label}) '{value}' has {length} characters; a unified social credit code "
        "must be 18 characters (GB 32100)",
    ),
    "credit-code-characters": (
        "{field}（{label}）“{value}” 含有不允许的字符 {chars}；统一社会信用代码只能由"
        "数字 0-9 和大写字母（不含 I、O、S、V、Z）组成（GB 32100）",
        "{field} ({label}) '{value}' holds characters that are not allowed: {chars}; a "
        "unified social credit code holds only the digits 0-9 and the upper-case letters "
        "except I, O, S, V and Z (GB 32100)",
    ),
    "id-number-length": (
        "{field}（{label}）“{value}” 为 {length} 位；身份证号码应为 18 位：17 位数字加 1 位"
        "校验码（15 位的旧式身份证号码须先升位为 18 位）",
        "{field} ({label}) '{value}' has {length} characters; it must be 18 characters: "
        "17 digits and a check character (a 15-digit ID of the old format must be "
        "converted to 18)",
    ),
    "id-number-characters": (
        "{field}（{label}）“{value}” 含有 ASCII 数字以外的字符 {chars}（全角数字？）；"
        "身份证号码前 17 位应为数字，第 18 位为数字或 X",
        "{field} ({label}) '{value}' holds characters other than ASCII digits: {chars} "
        "(full-width digits?); the first 17 must be digits, the 18th a digit or X",
    ),
    "bad-date": (
        "{field}（{label}）“{value}” 不是有效的时间；"
        "应为 yyyy-MM-dd HH:mm:ss、yyyyMMddHHmmss 或 ISO 8601",
        "{field} ({label}) '{value}' is not a real time; "
        "use yyyy-MM-dd HH:mm:ss, yyyyMMddHHmmss or ISO 8601",
    ),
    "future-date": (
        "{field}（{label}）“{value}” 晚于当前时间一天以上",
        "{field} ({label}) '{value}' is more than one day in the future",
    ),
    "conditional-field": (
        "{when_field}={when_value} 时必须填写 {field}（{label}）",
        "{field} ({label}) is required when {when_field} is {when_value}",
    ),
    "extension-unit": (
        "TBCXZL=A（延长审批时限）时 TBCXSXDW 必须为 G（工作日），实际为 “{value}”",
        "TBCXZL A (extension) requires TBCXSXDW G (working days), found '{value}'",
    ),
    "extension-length": (
        "TBCXZL=A（延长审批时限）时 TBCXSX 应在 1 到 15 之间，实际为 {value}",
        "TBCXZL A (extension) requires 0 < TBCXSX <= 15, found {value}",
    ),
    "count-mismatch": (
        "HEAD/COUNT 为 {declared}，实际记录数为 {actual}",
        "HEAD/COUNT says {declared} but the BODY holds {actual} records",
    ),
    "division-mismatch": (
        "记录的行政区划 {value} 不在报文头行政区划 {head} 之内",
        "the record's division {value} lies outside the HEAD's division {head}",
    ),
    "outside-node": (
        "记录的行政区划 {value} 不在本前置机节点的行政区划 {node} 之内，各级网关会拒收",
        "the record's division {value} lies outside this node's division {node}; "
        "the levels would refuse it",
    ),
    "duplicate-record": (
        "{element} 业务主键 {key} 版本 {version} 在本文件中重复出现且内容不同"
        "（首次出现于第 {first_line} 行）",
        "{element} key {key} version {version} appears twice in this file with different content "
        "(first at line {first_line})",
    ),
    "record-too-large": (
        "{element}（{element_label}）超过 {limit} 字节的上限，已整条拒收，未逐项检查",
        "{element} ({element_label}) is over the cap of {limit} bytes; it was refused whole, "
        "unchecked",
    ),
    "record-too-many-elements": (
        "{element}（{element_label}）含有超过 {limit} 个元素（该要素只有 {fields} 个字段），"
        "已整条拒收，未逐项检查",
        "{element} ({element_label}) holds more than {limit} elements (it has {fields} fields); "
        "it was refused whole, unchecked",
    ),
    "record-text-too-large": (
        "{element}（{element_label}）中有超过 {limit} 个字符的文本，已整条拒收",
        "{element} ({element_label}) holds a text over {limit} characters; it was refused whole",
    ),
    "more-issues": (
        "该记录另有 {count} 个问题未列出",
        "{count} more issues of this record are not listed",
    ),
    "more-file-issues": (
        "该文件另有 {count} 个问题未列出（只列出前 {shown} 个）",
        "{count} more issues of this file are not listed (the first {shown} are)",
    ),
    "unreadable": ("无法读取：{detail}", "cannot read: {detail}"),
}


class Localized(NamedTuple):
    """A message argument that itself differs by language."""

    zh: str
    en: str

    def __str__(self) -> str:
        return self.zh

    def pick(self, lang: str) -> str:
        """The text in ``lang`` ("en"; anything else reads Chinese, the default)."""
        return self.en if lang == "en" else self.zh


def render(message_id: str, args: dict[str, Any], lang: str = "zh") -> str:
    """Fill the template ``message_id`` in ``lang`` ("zh" or "en")."""
    return said(_MESSAGES, message_id, lang, **args)


def said(texts: Mapping[str, tuple[str, str]], text_id: str, lang: str, **args: object) -> str:
    """The (Chinese, English) text ``text_id`` of ``texts`` in ``lang``, placeholders
    filled, a ``Localized`` one in ``lang`` too: the one way every user-facing table of
    the project is read."""
    zh, en = texts[text_id]
    text = en if lang == "en" else zh
    if not args:
        return text
    return text.format(**{name: value.pick(lang) if isinstance(value, Localized) else value
                          for name, value in args.items()})


def columns(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One line of a listing: ``cells`` two spaces apart, each filled to its width in
    terminal cells (a Chinese character takes two), so that a header and its rows stay in
    columns in either language. A negative width aligns the cell right; a cell wider than
    its column is kept whole, never cut. A cell is made one line first (``one_line``), and
    measured as shown: a line break or an escape sequence in an ID a sender chose can
    neither start a forged row nor shift the columns."""
    def fill(cell: str, width: int) -> str:
        cell = one_line(cell)
        gap = " " * max(0, abs(width) - cell_len(cell))
        return gap + cell if width < 0 else cell + gap
    return "  ".join(fill(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()


# Every C0 and C1 control character, line breaks included, and Unicode's own line and
# paragraph separators: what would end a log line or act on a terminal.
_NOT_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` for one log line: control characters and line breaks shown as ``\\xNN``.

    Batch IDs, node IDs and file names come from senders; a newline in one would
    otherwise print a forged line ("… stored batch B2 …") into the operators' log.
    """
    return _NOT_IN_A_LINE.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class OneLineFormatter(logging.Formatter):
    """One line per record: the message through ``one_line``; a traceback stays as it
    is, on the lines after it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))
