"""A short, human summary of a generated sample set, in Chinese or English."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from schemas.catalog import load_catalog

if TYPE_CHECKING:
    from schemas.samples.generator import SampleSet

__all__ = ["describe"]


def describe(samples: SampleSet, lang: str = "zh") -> str:
    """What was written where, the records per element, and the defects injected."""
    catalog = load_catalog()
    mb = samples.bytes / 1024 / 1024
    per_element = [(catalog.elements[code], samples.elements.get(code, 0))
                   for code in catalog.elements if samples.elements.get(code)]
    codes = Counter(d.code for d in samples.defects)
    if lang == "en":
        lines = [f"wrote {len(samples.files)} file(s), {samples.records:,} records "
                 f"({samples.cases:,} cases, {mb:.1f} MB, {samples.encoding}) to {samples.out_dir}",
                 "by element: " + ", ".join(f"{s.code} {n:,}" for s, n in per_element)]
        defects = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
        lines.append(f"injected {len(samples.defects)} defect(s)"
                     + (f" ({defects}), listed in {samples.defects_path}" if defects else ""))
    else:
        lines = [f"已生成 {len(samples.files)} 个文件、{samples.records:,} 条记录"
                 f"（{samples.cases:,} 个办件，{mb:.1f} MB，{samples.encoding} 编码），"
                 f"目录：{samples.out_dir}",
                 "各要素：" + "，".join(f"{s.label} {n:,}" for s, n in per_element)]
        defects = "，".join(f"{code} {n}" for code, n in sorted(codes.items()))
        lines.append(f"注入缺陷 {len(samples.defects)} 处"
                     + (f"（{defects}），清单见 {samples.defects_path}" if defects else ""))
    lines.append(("seed " if lang == "en" else "随机种子 ") + str(samples.seed))
    return "\n".join(lines)
