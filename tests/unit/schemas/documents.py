"""Hand-written valid records of all 14 elements, and a tiny document builder.

Check digits here are real: 12451422MB0173307F passes GB 32100 and
11010519491231002X passes GB 11643.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

NS = "urn:exgate:exchange:1"
ORG = "12451422MB0173307F"
PERSON_ID = "11010519491231002X"
T = "2026-11-20 09:58:01"

COMMON = {"XZQHDM": "430102", "TYSHXYDM": ORG, "SJBBH": "1", "GXSJ": T}

VALID: dict[str, dict[str, str]] = {
    "JGXX": {"JGMC": "芙蓉区行政审批服务局"},
    "SXXX": {
        "SXBM": "SX001",
        "SXMC": "食品经营许可",
        "SXLX": "01",
        "FDSX": "20",
        "FDSXDW": "G",
        "CNSX": "10",
        "CNSXDW": "G",
        "SFSF": "1",
        "SFYJ": "湘价费〔2020〕1号",
    },
    "SBXX": {
        "SBLSH": "SB0001",
        "SXBM": "SX001",
        "SQRLX": "1",
        "SQRMC": "张三",
        "SQRZJLX": "10",
        "SQRZJHM": PERSON_ID,
        "SBSJ": "2026-11-20 09:00:00",
        "TJFS": "2",
    },
    "SBCL": {"SBLSH": "SB0001", "CLXH": "1", "CLMC": "营业执照", "CLLX": "1", "CLSL": "1"},
    "YSL": {"SBLSH": "SB0001", "YSLZT": "1", "YSLSJ": T, "BLRXM": "李四"},
    "SL": {
        "SBLSH": "SB0001",
        "SLZT": "1",
        "SLBMMC": "芙蓉区行政审批服务局",
        "SLBM": ORG,
        "BLRXM": "李四",
        "SLSJ": T,
        "CNSX": "10",
        "CNSXDW": "G",
    },
    "SPGC": {
        "SBLSH": "SB0001",
        "BZH": "1",
        "HJDM": "1",
        "HJMC": "承办",
        "SPRXM": "王五",
        "SPYJ": "同意",
        "SPSJ": T,
        "HJZT": "1",
    },
    "BZGZ": {
        "SBLSH": "SB0001",
        "BZGZYY": "材料不全",
        "BZCLQD": "身份证复印件",
        "BZGZSJ": T,
        "GZRXM": "李四",
    },
    "BZSL": {"SBLSH": "SB0001", "BZCLQD": "身份证复印件", "BZSLSJ": T, "BLRXM": "李四"},
    "TBCXSQ": {
        "SBLSH": "SB0001",
        "XH": "1",
        "TBCXZL": "A",
        "TBCXKSSJ": T,
        "TBCXSX": "10",
        "TBCXSXDW": "G",
        "TBCXLY": "需现场核查",
        "PZRXM": "赵六",
    },
    "TBCXJG": {"SBLSH": "SB0001", "XH": "1", "TBCXJG": "核查完毕", "TBCXJSSJ": T},
    "BJ": {
        "SBLSH": "SB0001",
        "BJJG": "0",
        "BJJGMS": "准予许可",
        "ZJMC": "食品经营许可证",
        "ZJBH": "JY14301020001",
        "BJSJ": T,
        "BJBM": ORG,
    },
    "SF": {
        "SBLSH": "SB0001",
        "JKDH": "JK0001",
        "SFJE": "120.50",
        "SFBZ": "湘价费〔2020〕1号",
        "SFSJ": T,
        "SFRXM": "钱七",
    },
    "LQDJ": {"SBLSH": "SB0001", "LQFS": "1", "LQRXM": "张三", "LQSJ": T},
}


def record(element: str, **changes: str | None) -> tuple[str, dict[str, str]]:
    """A valid record of ``element`` with ``changes``; a None value removes the field."""
    fields = {**COMMON, **VALID[element]}
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return element, fields


def document(
    records: Iterable[tuple[str, Mapping[str, str]]],
    *,
    head: Mapping[str, str] | None = None,
    encoding: str = "UTF-8",
    extra_body: str = "",
) -> bytes:
    """One line per record: record i (0-based) is on line 5 + i."""
    head_fields = {"XZQHDM": "430102", "TYSHXYDM": ORG, "CREATED": T, **(head or {})}
    head_xml = "".join(f"<{k}>{v}</{k}>" for k, v in head_fields.items())
    lines = [
        f'<?xml version="1.0" encoding="{encoding}"?>',
        f'<EXCHANGE xmlns="{NS}" version="1">',
        f"<HEAD>{head_xml}</HEAD>",
        "<BODY>",
    ]
    for element, fields in records:
        body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
        lines.append(f"<{element}>{body}</{element}>")
    if extra_body:
        lines.append(extra_body)
    lines += ["</BODY>", "</EXCHANGE>", ""]
    return "\n".join(lines).encode(encoding)
