"""The ``exgate`` command line: parses arguments and calls one function per command.

No logic lives here: each command hands over to the package that owns the work.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

LANG_OPTION = click.option(
    "--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
    help="Language of reports / 报告语言",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exgate")
def main() -> None:
    """exgate: inter-level data exchange gateway for electronic supervision (电子监察)."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: file:line:col: ELEMENT/FIELD: message; json: one object")
@click.option("--schema-version", type=int, default=None,
              help="Require this schema version (default: any version the gateway knows)")
@click.option("--max-file-mb", type=int, default=4096, show_default=True, help="Size cap per file")
@LANG_OPTION
def validate(paths: tuple[Path, ...], output: str, schema_version: int | None,
             max_file_mb: int, lang: str) -> None:
    """Validate exchange XML files or folders (recursive) against the XSD and the rules.

    \b
    Example:
      exgate validate inbox/ export/2026-11.xml --format json
    Exit codes: 0 all valid, 1 any invalid, 2 usage error or unreadable path.
    """
    from schemas.validate_command import run_validate

    sys.exit(run_validate(paths, output, schema_version, max_file_mb, lang))


@main.group()
def agent() -> None:
    """The front-end agent (前置机代理): sources → validation → outbox."""


@agent.command("once")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Agent config (TOML)")
@LANG_OPTION
def agent_once(config_path: Path, lang: str) -> None:
    """Poll every source once, journal what is valid, seal batches, print a report.

    \b
    Example:
      exgate agent once -c /etc/exgate/agent.toml
    Exit codes: 0 ok, 1 some records rejected, 2 config error.
    """
    from frontend_machine.agent import run_once

    sys.exit(run_once(config_path, lang))


@agent.command("run")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Agent config (TOML)")
@LANG_OPTION
def agent_run(config_path: Path, lang: str) -> None:
    """Run the agent until SIGTERM/SIGINT (the systemd service runs this).

    \b
    Example:
      exgate agent run -c /etc/exgate/agent.toml
    Exit codes: 0 clean stop, 2 config error.
    """
    from frontend_machine.agent import run_forever

    sys.exit(run_forever(config_path, lang))


@main.group()
def frontdb() -> None:
    """Front-end database tables for database mode (前置库表 EX_<CODE>)."""


@frontdb.command("init")
@click.option("--url", required=True, help="SQLAlchemy URL of the front-end database")
@click.option("--sql", "print_sql", is_flag=True, help="Print the DDL for a DBA; change nothing")
@click.option("--triggers", is_flag=True, help="Also the triggers that fill EX_CHANGELOG")
def frontdb_init(url: str, print_sql: bool, triggers: bool) -> None:
    """Create the EX_<CODE> tables and EX_CHANGELOG, or print their DDL.

    \b
    Examples:
      exgate frontdb init --url postgresql://exgate@127.0.0.1/front --triggers
      exgate frontdb init --url oracle:// --sql --triggers > front.sql
    Exit codes: 0 ok, 1 database unreachable, 2 bad URL.
    """
    from adapters.frontdb import run_init

    sys.exit(run_init(url, print_sql, triggers))


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder / 输出目录")
@click.option("--cases", type=click.IntRange(min=0), default=100, show_default=True,
              help="Whole cases (申办 → 办结 → 领取) to generate")
@click.option("--encoding", default="UTF-8", show_default=True,
              help="Document encoding: UTF-8, GB18030, GBK, UTF-16 …")
@click.option("--invalid-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of records with one injected defect, listed in DEFECTS.json")
@click.option("--seed", type=int, default=None, help="Random seed: same seed, same files")
@click.option("--files", type=click.IntRange(min=1), default=1, show_default=True,
              help="Spread the cases over this many files (one department each)")
@LANG_OPTION
def samples(out_dir: Path, cases: int, encoding: str, invalid_rate: float, seed: int | None,
            files: int, lang: str) -> None:
    """Generate realistic sample cases: valid check digits, whole lifecycles, optional defects.

    \b
    Example:
      exgate samples --out demo/inbox --cases 500 --encoding GB18030 --invalid-rate 0.05
    Exit codes: 0 ok, 2 unknown encoding.
    """
    from schemas.samples.command import run_samples

    sys.exit(run_samples(out_dir, cases=cases, encoding=encoding, invalid_rate=invalid_rate,
                         seed=seed, files=files, lang=lang))

@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("demo-run"),
              show_default=True, help="Where the demo writes its data (emptied first)")
@LANG_OPTION
def demo(workdir: Path, lang: str) -> None:
    """Run the whole path on embedded defaults and print what happened.

    \b
    Example:
      exgate demo --lang en
    """
    from gateway.demo import run_demo

    sys.exit(run_demo(workdir, lang))


if __name__ == "__main__":
    main()
