"""User-facing validation messages, Simplified Chinese first, English second.

Each message says what is wrong with the quoted value and, where it helps, what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["LANGUAGES", "Localized", "render", "said"]

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
        "文本节点超过上限 {limit} 字节，已停止读取该文件",
        "a text node is over the cap of {limit} bytes; reading of the file stopped",
    ),
    "encoding-error": (
        "字节与声明的编码 {encoding} 不符：{detail}",
        "the bytes do not match the declared encoding {encoding}: {detail}",
    ),
    "undecodable-bytes": (
        "字节 {data} 不是声明的编码 {encoding} 中的字符，已停止读取该文件；"
        "请按该编码重新导出，或在 XML 声明中写明实际编码",
        "the bytes {data} are no character of the declared encoding {encoding}; reading of "
        "the file stopped. Export it again in that encoding, or declare the one it is in",
    ),
    "malformed-xml": ("XML 格式不正确：{detail}", "the document is not well-formed XML: {detail}"),
    "too-deep": ("元素嵌套过深：{detail}", "elements are nested too deeply: {detail}"),
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
    zh, en = _MESSAGES[message_id]
    template = en if lang == "en" else zh
    values = {
        name: (value.en if lang == "en" else value.zh) if isinstance(value, Localized) else value
        for name, value in args.items()
    }
    return template.format(**values)


def said(texts: Mapping[str, tuple[str, str]], text_id: str, lang: str, **args: object) -> str:
    """The (Chinese, English) text ``text_id`` of ``texts`` in ``lang``, placeholders
    filled: the one way every user-facing table of the project is read."""
    zh, en = texts[text_id]
    text = en if lang == "en" else zh
    return text.format(**args) if args else text
