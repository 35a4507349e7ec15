"""``exgate demo``: the whole path on embedded defaults, narrated for a first-time user."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from schemas.audit import validate_paths
from schemas.audit_report import format_issue, format_summary
from schemas.samples import generate

__all__ = ["run_demo"]

_TEXT = {
    "samples": ("生成样例数据：{cases} 个办件，{records} 条记录，写入 {out}（含 {defects} 处故意注入的缺陷）",
                "generated {cases} cases, {records} records into {out} ({defects} injected defects)"),
    "validate": ("按 XSD 与业务规则校验样例数据：", "validating the samples against the XSD and rules:"),
    "first": ("前 {n} 个问题：", "first {n} issues:"),
    "done": ("演示完成。", "demo finished."),
}


def _say(key: str, lang: str, **args: object) -> None:
    zh, en = _TEXT[key]
    click.echo((en if lang == "en" else zh).format(**args))


def run_demo(workdir: Path, lang: str = "zh", cases: int = 200) -> int:
    """Generate realistic cases with a few defects and validate them like an auditor."""
    if workdir.exists():
        shutil.rmtree(workdir)
    samples = generate(workdir / "samples", cases=cases, invalid_rate=0.01, files=4)
    _say("samples", lang, cases=samples.cases, records=samples.records, out=samples.out_dir,
         defects=len(samples.defects))
    _say("validate", lang)
    summary = validate_paths([samples.out_dir])
    issues = [issue for result in summary.results for issue in result.issues]
    if issues:
        _say("first", lang, n=min(5, len(issues)))
        for issue in issues[:5]:
            click.echo("  " + format_issue(issue, lang))
    click.echo(format_summary(summary, lang))
    _say("done", lang)
    return 0
