"""The ``exgate`` command line: parses arguments and calls one function per command.

No logic lives here: each command hands over to the package that owns the work.
"""

from __future__ import annotations

import faulthandler
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
    # A fatal signal (SIGBUS on a store file taken away under SQLite's memory map, a
    # crash in a driver) would otherwise end a gateway or agent with no trace in its log.
    # The process's own stderr: sys.stderr may be a stand-in without a file descriptor.
    if sys.__stderr__ is not None:
        faulthandler.enable(file=sys.__stderr__)


# The agent's own commands: without --lang, the config's [agent] lang decides.
AGENT_LANG_OPTION = click.option(
    "--lang", type=click.Choice(["zh", "en"]), default=None,
    help="Language of reports; default: [agent] lang of the config, else zh / 报告语言",
)


@main.command()
# readable=False: a path that cannot be read is reported by the run, with the others
# still checked, as a missing one is; click would stop everything in English.
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(readable=False, path_type=Path))
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text: file:line:col: ELEMENT/FIELD: message; json: one object")
@click.option("--schema-version", type=int, default=None,
              help="Require this schema version (default: any version the gateway knows)")
@click.option("--max-file-mb", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Size cap per file")
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
@click.option("-c", "--config", "config_path", required=True,
              type=click.Path(readable=False, path_type=Path),
              help="Agent config (TOML)")
@AGENT_LANG_OPTION
def agent_once(config_path: Path, lang: str | None) -> None:
    """Poll every source once, journal what is valid, seal batches, print a report.

    \b
    Example:
      exgate agent once -c /etc/exgate/agent.toml
    Exit codes: 0 ok, 1 some records rejected or a source failed, 2 config error.
    """
    from frontend_machine.agent_command import run_once

    sys.exit(run_once(config_path, lang))


@agent.command("run")
@click.option("-c", "--config", "config_path", required=True,
              type=click.Path(readable=False, path_type=Path),
              help="Agent config (TOML)")
@AGENT_LANG_OPTION
def agent_run(config_path: Path, lang: str | None) -> None:
    """Run the agent until SIGTERM/SIGINT (the systemd service runs this).

    \b
    Example:
      exgate agent run -c /etc/exgate/agent.toml
    Exit codes: 0 clean stop, 2 config error.
    """
    from frontend_machine.agent_command import run_forever

    sys.exit(run_forever(config_path, lang))


@main.group()
def frontdb() -> None:
    """Front-end database tables for database mode (前置库表 EX_<CODE>)."""


@frontdb.command("init")
@click.option("--url", required=True, help="SQLAlchemy URL of the front-end database")
@click.option("--password-file", type=click.Path(readable=False, path_type=Path),
              default=None,
              help="File holding the password of the URL's user, kept out of ps and shell "
                   "history (or $EXGATE_FRONTDB_PASSWORD); not read with --sql")
@click.option("--sql", "print_sql", is_flag=True, help="Print the DDL for a DBA; change nothing")
@click.option("--triggers", is_flag=True, help="Also the triggers that fill EX_CHANGELOG")
@click.option("--triggers-only", is_flag=True,
              help="Only (re)place the triggers, on the tables already there")
@LANG_OPTION
def frontdb_init(url: str, password_file: Path | None, print_sql: bool, triggers: bool,
                 triggers_only: bool, lang: str) -> None:
    """Create the EX_<CODE> tables and EX_CHANGELOG, or print their DDL.

    \b
    Examples:
      exgate frontdb init --url postgresql://exgate@127.0.0.1/front \\
          --password-file /etc/exgate/front-db.password --triggers
      EXGATE_FRONTDB_PASSWORD=... exgate frontdb init --url mysql://exgate@db/front
      exgate frontdb init --url oracle:// --sql --triggers > front.sql
      exgate frontdb init --url oracle:// --sql --triggers-only > triggers.sql
    Exit codes: 0 ok, 1 database unreachable or triggers that do not compile, 2 bad URL
    or password option, or tables there that lack columns (or, --triggers-only, are missing).
    """
    from adapters.frontdb_command import run_init

    sys.exit(run_init(url, print_sql, triggers, lang, password_file, triggers_only))


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


@main.group()
def gateway() -> None:
    """A level's gateway (省/市/县级网关): consume → verify → store → receipt."""


@gateway.command("run")
@click.option("-c", "--config", "config_path", required=True,
              type=click.Path(readable=False, path_type=Path),
              help="Gateway config (TOML)")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Batches worked on in parallel, one node's one at a time in their "
                   "order (default: [gateway] workers)")
@click.option("--drain", is_flag=True,
              help="Exit once the level's queue has stayed empty for a moment")
def gateway_run(config_path: Path, workers: int | None, drain: bool) -> None:
    """Consume this level's queue into its store until SIGTERM/SIGINT (or --drain).

    \b
    Example:
      exgate gateway run -c /etc/exgate/gateway-430100.toml --workers 4
    Exit codes: 0 clean stop or drained, 1 the store cannot be used, 2 config error.
    """
    from gateway.cli_support import log_to_stderr
    from gateway.run import run_gateway

    log_to_stderr()
    sys.exit(run_gateway(config_path, workers, drain))


# ---- broker and node provisioning (gateway/node_command.py) --------------------------

# The folder options take any path (readable=False, files too): click would refuse one
# in English; the command names a path that is no readable folder, and why
# (gateway/cli_support.check_folder), in the language chosen.
BROKER_BASE_OPTION = click.option(
    "--base", type=click.Path(readable=False, path_type=Path), default=None,
    help="Broker folder (default: $EXGATE_BROKER_BASE, /var/lib/exgate/broker as root, "
         "else ~/.local/state/exgate/broker)")


@main.group()
def broker() -> None:
    """A private RabbitMQ node on 127.0.0.1 for development and the demo (私有消息服务器)."""


@broker.command("start")
@BROKER_BASE_OPTION
@click.option("--level", "levels", multiple=True, metavar="CODE",
              help="Also declare this level's queues (repeatable)")
@LANG_OPTION
def broker_start(base: Path | None, levels: tuple[str, ...], lang: str) -> None:
    """Start the node (if not running) and declare the exgate exchanges and queues.

    \b
    Example:
      exgate broker start --base /tmp/exgate-broker --level 430000 --level 430100
    Exit codes: 0 ok, 1 broker failed to start, 2 configuration error.
    """
    from gateway.node_command import run_broker

    sys.exit(run_broker("start", base, levels, lang))


@broker.command("stop")
@BROKER_BASE_OPTION
@LANG_OPTION
def broker_stop(base: Path | None, lang: str) -> None:
    """Stop the node (its data stays in the folder).

    \b
    Example:
      exgate broker stop --base /tmp/exgate-broker
    """
    from gateway.node_command import run_broker

    sys.exit(run_broker("stop", base, (), lang))


@broker.command("status")
@BROKER_BASE_OPTION
@LANG_OPTION
def broker_status(base: Path | None, lang: str) -> None:
    """Say whether the node runs. Exit codes: 0 running, 2 no broker in that folder, 3 not
    running.

    \b
    Example:
      exgate broker status --base /tmp/exgate-broker
    """
    from gateway.node_command import run_broker

    sys.exit(run_broker("status", base, (), lang))


@broker.command("link")
@click.option("--upstream", required=True, envvar="EXGATE_UPSTREAM_URL",
              help="amqp://USER[:PASSWORD]@HOST:PORT/VHOST of the broker the messages come "
                   "from (or $EXGATE_UPSTREAM_URL; password also from "
                   "$EXGATE_UPSTREAM_PASSWORD)")
@click.option("--division", required=True,
              help="Level of that broker: the lower one (up) or the upper one (down)")
@click.option("--direction", type=click.Choice(["up", "down"]), default="up",
              show_default=True, help="up: records and heartbeats; down: receipts")
@click.option("--via", type=click.Choice(["federation", "shovel"]), default="federation",
              show_default=True, help="RabbitMQ plugin that carries records up")
@click.option("--admin-url", default=None, envvar="EXGATE_ADMIN_URL",
              help="Management API of this (receiving) broker, or $EXGATE_ADMIN_URL")
@BROKER_BASE_OPTION
@click.option("--vhost", default="/", show_default=True, help="Virtual host")
@click.option("--max-hops", type=click.IntRange(1, 10), default=None,
              help="Override max-hops (default: 2 from a city, else 1)")
@LANG_OPTION
def broker_link(upstream: str, division: str, direction: str, via: str,
                admin_url: str | None, base: Path | None, vhost: str,
                max_hops: int | None, lang: str) -> None:
    """Link levels on separate brokers with RabbitMQ federation or shovel (跨服务器级联).

    \b
    Example (on the city broker: county records come up; then on the county broker:
    city and province receipts come down):
      EXGATE_UPSTREAM_PASSWORD=... exgate broker link --upstream \\
          amqp://link@county-mq:5672/%2F --division 430102 --admin-url http://...
      exgate broker link --direction down --upstream amqp://link@city-mq:5672/%2F \\
          --division 430100 --base /var/lib/exgate/broker
    Exit codes: 0 linked and running, 1 broker or API error, or the link not running
    within 15 s (it stays declared and retries), 2 usage or configuration.
    """
    from gateway.federation_command import run_link

    sys.exit(run_link(upstream=upstream, division=division, direction=direction, via=via,
                      admin_url=admin_url, base=base, vhost=vhost, max_hops=max_hops,
                      lang=lang))


REGISTRY_OPTION = click.option(
    "--registry", type=click.Path(readable=False, path_type=Path), default=Path("registry"),
    show_default=True, help="Node registry folder read by the gateways")
ADMIN_OPTIONS = [
    click.option("--broker-base", type=click.Path(readable=False, path_type=Path),
                 default=None, help="Provision on the private broker in this folder"),
    click.option("--admin-url", default=None, envvar="EXGATE_ADMIN_URL",
                 help="Management API http://USER:PASSWORD@HOST:PORT (or $EXGATE_ADMIN_URL)"),
    click.option("--vhost", default="/", show_default=True, help="Virtual host"),
]


def _admin_options(function):  # type: ignore[no-untyped-def]
    for option in reversed(ADMIN_OPTIONS):
        function = option(function)
    return function


@gateway.command("user")
@click.argument("division")
@click.option("--user", default=None, help="Broker user name (default: exgate-gw-DIVISION)")
@click.option("--password-file", "out", required=True,
              # a folder, or an existing file (readable or not), is refused in exgate's words
              type=click.Path(path_type=Path, readable=False),
              help="New file for the user's password, mode 0600 (never overwritten); the "
                   "gateway config's [broker] password_file")
@_admin_options
@LANG_OPTION
def gateway_user(division: str, user: str | None, out: Path, broker_base: Path | None,
                 admin_url: str | None, vhost: str, lang: str) -> None:
    """Create the broker user of a level's gateway, with the least privilege it needs.

    It may declare its level's queues (the exchanges, which this command declares, the
    gateway only finds), consume exgate.level.DIVISION, exgate.status.DIVISION and
    exgate.dead.DIVISION, and publish receipts; it can neither publish records or
    heartbeats nor read another level's queues. A user that exists and
    is this level's gateway user gets its permissions again and a new password (gateways
    using the old one are refused when they reconnect); any other user is refused. It
    prints the [broker] lines for the gateway config, never the password.

    \b
    Example:
      exgate gateway user 430100 --password-file /etc/exgate/broker-430100.password \\
          --admin-url http://admin@mq.example.gov:15672
    Exit codes: 0 ok, 1 broker or management API error, 2 bad division, user name or
    configuration, an existing password file, or a user that is not this level's gateway
    user.
    """
    from gateway.node_command import run_gateway_user

    sys.exit(run_gateway_user(division, out=out, user=user, broker_base=broker_base,
                              admin_url=admin_url, vhost=vhost, lang=lang))


@main.group()
def node() -> None:
    """Node registry administration (节点登记与开通)."""


@node.command("add")
@click.argument("node_id", metavar="ID")
@click.option("--division", required=True, help="The node's 6-digit division code")
@REGISTRY_OPTION
@_admin_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Credentials file for the agent's [node] key_file (default: ID.key)")
@LANG_OPTION
def node_add(node_id: str, division: str, registry: Path, broker_base: Path | None,
             admin_url: str | None, vhost: str, out: Path | None, lang: str) -> None:
    """Provision a node: broker user limited to its routing key, keys, registry entry.

    \b
    Example:
      exgate node add furong-01 --division 430102 --registry /etc/exgate/registry \\
          --admin-url http://admin@127.0.0.1:15672 --out furong-01.key
    Exit codes: 0 ok, 1 broker error, 2 bad ID, division or configuration.
    """
    from gateway.node_command import run_node

    sys.exit(run_node("add", node_id=node_id, division=division, registry=registry,
                      broker_base=broker_base, admin_url=admin_url, vhost=vhost, out=out,
                      lang=lang))


@node.command("list")
@REGISTRY_OPTION
@LANG_OPTION
def node_list(registry: Path, lang: str) -> None:
    """List registered nodes: ID, division, status, key version, broker user.

    \b
    Example:
      exgate node list --registry /etc/exgate/registry
    Exit codes: 0 listed, 2 the registry folder does not exist, is no folder or cannot
    be read, or a file in it is unreadable (the others are listed).
    """
    from gateway.node_command import run_node

    sys.exit(run_node("list", registry=registry, lang=lang))


@node.command("disable")
@click.argument("node_id", metavar="ID")
@REGISTRY_OPTION
@_admin_options
@LANG_OPTION
def node_disable(node_id: str, registry: Path, broker_base: Path | None,
                 admin_url: str | None, vhost: str, lang: str) -> None:
    """Disable a node: gateways refuse it; with a broker, revoke its access too.

    \b
    Example:
      exgate node disable furong-01 --admin-url http://admin@127.0.0.1:15672
    """
    from gateway.node_command import run_node

    sys.exit(run_node("disable", node_id=node_id, registry=registry, broker_base=broker_base,
                      admin_url=admin_url, vhost=vhost, lang=lang))


@node.command("enable")
@click.argument("node_id", metavar="ID")
@REGISTRY_OPTION
@_admin_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With a broker: the node's existing credentials file, which gets the new "
                   "broker password (default: ID.key)")
@LANG_OPTION
def node_enable(node_id: str, registry: Path, broker_base: Path | None,
                admin_url: str | None, vhost: str, out: Path | None, lang: str) -> None:
    """Enable a disabled node again; with a broker, restore its access (a new password).

    \b
    Example:
      exgate node enable furong-01 --admin-url http://admin@127.0.0.1:15672 \\
          --out /etc/exgate/furong-01.key
    Exit codes: 0 ok, 1 broker error, 2 not registered, not its file, or configuration.
    """
    from gateway.node_command import run_node

    sys.exit(run_node("enable", node_id=node_id, registry=registry, broker_base=broker_base,
                      admin_url=admin_url, vhost=vhost, out=out, lang=lang))


@node.command("rotate-key")
@click.argument("node_id", metavar="ID")
@REGISTRY_OPTION
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The node's existing credentials file to update; it must be this "
                   "node's, and its broker login is kept (default: ID.key)")
@LANG_OPTION
def node_rotate_key(node_id: str, registry: Path, out: Path | None, lang: str) -> None:
    """Give a node a new key version (old ones keep verifying batches until retired).

    \b
    Example:
      exgate node rotate-key furong-01 --out /etc/exgate/furong-01.key
    """
    from gateway.node_command import run_node

    sys.exit(run_node("rotate-key", node_id=node_id, registry=registry, out=out, lang=lang))


@node.command("retire-key")
@click.argument("node_id", metavar="ID")
@REGISTRY_OPTION
@click.option("--version", "key_version", type=click.IntRange(min=1), required=True,
              help="The older key version to stop accepting (see exgate node list)")
@LANG_OPTION
def node_retire_key(node_id: str, registry: Path, key_version: int, lang: str) -> None:
    """Stop accepting an older key version of a node, once its batches have landed.

    \b
    Example:
      exgate node retire-key furong-01 --version 1
    """
    from gateway.node_command import run_node

    sys.exit(run_node("retire-key", node_id=node_id, registry=registry,
                      key_version=key_version, lang=lang))


# ---- operations: replay of failed batches, audit export ---------------------------------
# (gateway/replay_command.py, gateway/export_command.py, frontend_machine/replay_command.py)

GATEWAY_CONFIG_OPTION = click.option(
    "-c", "--config", "config_path",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    default=None, help="Gateway config (TOML); default $EXGATE_CONFIG or "
                       "/etc/exgate/gateway.toml")
AGENT_CONFIG_OPTION = click.option(
    "-c", "--config", "config_path",
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    default=None, help="Agent config (TOML); default $EXGATE_AGENT_CONFIG or "
                       "/etc/exgate/agent.toml")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="One JSON object")


@main.group()
def batches() -> None:
    """A level's batches: list, show and replay failed ones (失败批次查看与重放)."""


@batches.command("list")
@GATEWAY_CONFIG_OPTION
@click.option("--failed", is_flag=True, help="Only failed batches not yet replayed")
@click.option("--node", "node_id", default=None, help="Only this node's batches")
@click.option("--since", default=None,
              help="From this time: 2026-11-20, '2026-11-20 10:00:00', 24h, 7d")
@click.option("--limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="The newest N (0: all)")
@JSON_OPTION
@LANG_OPTION
def batches_list(config_path: Path | None, failed: bool, node_id: str | None,
                 since: str | None, limit: int, as_json: bool, lang: str) -> None:
    """List stored and failed batches, oldest first.

    \b
    Example:
      exgate batches list -c /etc/exgate/gateway-430100.toml --failed --since 24h
    Exit codes: 0 ok, 2 config error or store unreachable.
    """
    from gateway.replay_command import run_batches_list

    sys.exit(run_batches_list(config_path, failed, node_id, since, as_json, limit, lang))


@batches.command("show")
@click.argument("batch_id", metavar="ID")
@GATEWAY_CONFIG_OPTION
@JSON_OPTION
@LANG_OPTION
def batches_show(batch_id: str, config_path: Path | None, as_json: bool, lang: str) -> None:
    """Show a batch: headers, reasons and its first records (secrets redacted).

    \b
    Example:
      exgate batches show B20261120100000-3f2a9c1b7d4e -c gateway.toml
    Exit codes: 0 ok, 1 not found, 2 config error or store unreachable.
    """
    from gateway.replay_command import run_batches_show

    sys.exit(run_batches_show(config_path, batch_id, as_json, lang))


@batches.command("replay")
@click.argument("batch_ids", nargs=-1, metavar="[ID]...")
@GATEWAY_CONFIG_OPTION
@click.option("--all-failed", is_flag=True, help="Every failed batch not yet replayed")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing")
@click.option("--receipts/--no-receipts", default=True, show_default=True,
              help="Send the new receipt to the node through the broker (best effort)")
@JSON_OPTION
@LANG_OPTION
def batches_replay(batch_ids: tuple[str, ...], config_path: Path | None, all_failed: bool,
                   dry_run: bool, receipts: bool, as_json: bool, lang: str) -> None:
    """Reprocess failed batches through the gateway pipeline once the cause is fixed.

    \b
    Examples:
      exgate batches replay --all-failed --dry-run -c gateway.toml
      exgate batches replay B20261120100000-3f2a9c1b7d4e -c gateway.toml
    Exit codes: 0 all landed, 1 some still failing or not found, 2 config error.
    """
    from gateway.replay_command import run_batches_replay

    sys.exit(run_batches_replay(config_path, batch_ids, all_failed, dry_run, receipts,
                                as_json, lang))


@main.group()
def conflicts() -> None:
    """Records that came again with a stored key and version but other content (冲突记录)."""


@conflicts.command("list")
@GATEWAY_CONFIG_OPTION
@click.option("--node", "node_id", default=None, help="Only this node's conflicts")
@click.option("--all", "include_resolved", is_flag=True, help="Resolved ones too")
@click.option("--limit", type=click.IntRange(min=0), default=500, show_default=True,
              help="The oldest N (0: all)")
@JSON_OPTION
@LANG_OPTION
def conflicts_list(config_path: Path | None, node_id: str | None, include_resolved: bool,
                   limit: int, as_json: bool, lang: str) -> None:
    """List the level's conflicts not yet resolved, oldest first.

    \b
    Example:
      exgate conflicts list -c /etc/exgate/gateway-430100.toml --node furong-01
    Exit codes: 0 ok, 2 config error or store unreachable.
    """
    from gateway.conflicts_command import run_conflicts_list

    sys.exit(run_conflicts_list(config_path, node_id, include_resolved, limit, as_json, lang))


@conflicts.command("show")
@click.argument("conflict_id", metavar="ID", type=int)
@GATEWAY_CONFIG_OPTION
@JSON_OPTION
@LANG_OPTION
def conflicts_show(conflict_id: int, config_path: Path | None, as_json: bool,
                   lang: str) -> None:
    """Show the fields where a conflict's content differs from the stored version.

    \b
    Example:
      exgate conflicts show 12 -c gateway.toml
    Exit codes: 0 ok, 1 not found, 2 config error or store unreachable.
    """
    from gateway.conflicts_command import run_conflicts_show

    sys.exit(run_conflicts_show(config_path, conflict_id, as_json, lang))


@conflicts.command("resolve")
@click.argument("conflict_ids", nargs=-1, required=True, metavar="ID...", type=int)
@click.option("--note", required=True,
              help="Why they are settled (kept for the auditors, at most 500 characters)")
@click.option("--by", default=None,
              help="Who settled them  [default: your login name; under sudo, who ran sudo]")
@GATEWAY_CONFIG_OPTION
@JSON_OPTION
@LANG_OPTION
def conflicts_resolve(conflict_ids: tuple[int, ...], note: str, by: str | None,
                      config_path: Path | None, as_json: bool, lang: str) -> None:
    """Mark conflicts resolved once a person has settled them; no record changes.

    \b
    Example:
      exgate conflicts resolve 12 13 -c gateway.toml --note "source resent as SJBBH 2"
    Exit codes: 0 ok, 1 some ID not found, 2 config error, bad --note/--by or store
    unreachable.
    """
    from gateway.conflicts_command import run_conflicts_resolve

    sys.exit(run_conflicts_resolve(config_path, conflict_ids, by, note, as_json, lang))


@main.command("export")
@GATEWAY_CONFIG_OPTION
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="New or empty folder")
@click.option("--division", default=None, help="Only this division (default: the level's)")
@click.option("--since", default=None, help="Latest version's GXSJ from (inclusive)")
@click.option("--until", default=None, help="Latest version's GXSJ before (exclusive)")
@click.option("--element", "elements", multiple=True, metavar="CODE",
              help="Only this element (repeatable; default all 14)")
@click.option("--max-records-per-file", type=click.IntRange(min=1), default=50_000,
              show_default=True, help="Records per file")
@click.option("--org", default=None, metavar="TYSHXYDM",
              help="HEAD/TYSHXYDM (default: each file's first record's department)")
@LANG_OPTION
def export(config_path: Path | None, out_dir: Path, division: str | None, since: str | None,
           until: str | None, elements: tuple[str, ...], max_records_per_file: int,
           org: str | None, lang: str) -> None:
    """Export the latest version of every record as standard XML plus MANIFEST.json.

    \b
    Example:
      exgate export -c gateway.toml --out audit-2026-11 --since 2026-11-01 --until 2026-12-01
    Exit codes: 0 written, 2 a refused option, config error, store unreachable or folder
    not empty.
    """
    from gateway.export_command import run_export

    sys.exit(run_export(config_path, out_dir, division, since, until, elements,
                        max_records_per_file, org, lang))


@main.group()
def audit() -> None:
    """Auditors' checks of exports (审计导出核对)."""


@audit.command("verify")
@click.argument("folder", type=click.Path(readable=False, path_type=Path))
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@LANG_OPTION
def audit_verify(folder: Path, output: str, lang: str) -> None:
    """Check an export's MANIFEST.json (hashes, counts, files) and validate every file.

    \b
    Example:
      exgate audit verify audit-2026-11 --lang en
    Exit codes: 0 ok, 1 mismatch or invalid file, 2 the folder is missing, no folder or
    unreadable.
    """
    from gateway.export_command import run_audit_verify

    sys.exit(run_audit_verify(folder, output, lang))


@agent.command("batches")
@AGENT_CONFIG_OPTION
@click.option("--all", "show_all", is_flag=True, help="Also the batches every level stored")
@click.option("--limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="The newest N (0: all)")
@JSON_OPTION
@AGENT_LANG_OPTION
def agent_batches(config_path: Path | None, show_all: bool, limit: int, as_json: bool,
                  lang: str | None) -> None:
    """Outbox batches with each level's receipt; failed ones with the reasons.

    \b
    Example:
      exgate agent batches -c /etc/exgate/agent.toml
    Exit codes: 0 ok, 2 config error.
    """
    from frontend_machine.replay_command import run_agent_batches

    sys.exit(run_agent_batches(config_path, show_all, limit, as_json, lang))


@agent.command("replay")
@click.argument("batch_ids", nargs=-1, metavar="[BATCH_ID]...")
@AGENT_CONFIG_OPTION
@click.option("--all-failed", is_flag=True, help="Requeue every batch a level answered failed")
@click.option("--rejects", is_flag=True,
              help="Send corrected source rejects back in (error/ files, SYNC_FLAG=2 rows)")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing")
@JSON_OPTION
@AGENT_LANG_OPTION
def agent_replay(batch_ids: tuple[str, ...], config_path: Path | None, all_failed: bool,
                 rejects: bool, dry_run: bool, as_json: bool, lang: str | None) -> None:
    """Requeue failed batches (or named sent ones whose receipt never came) for the
    publisher, and re-admit corrected rejects.

    \b
    Examples:
      exgate agent replay -c /etc/exgate/agent.toml --all-failed
      exgate agent replay -c /etc/exgate/agent.toml B20261124060137-578a48cd1f2d
      exgate agent replay -c /etc/exgate/agent.toml --rejects --dry-run
    Exit codes: 0 all went back in, 1 some still invalid or not found, or a source
    failed, 2 config error.
    """
    from frontend_machine.replay_command import run_agent_replay

    sys.exit(run_agent_replay(config_path, batch_ids, all_failed, rejects, dry_run, as_json,
                              lang))


# ---- sync status and dashboard (gateway/status_command.py, gateway/dashboard/) ----------

@main.command()
@GATEWAY_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object (shape: gateway/status_json.py)")
@LANG_OPTION
def status(config_path: Path | None, as_json: bool, lang: str) -> None:
    """Sync status of every node: lights, last heartbeat, lag, pending, failed, coverage.

    \b
    Examples:
      exgate status -c /etc/exgate/gateway-430100.toml
      exgate status --json | jq '.nodes[] | select(.light != "green") | .node_id'
    Exit codes: 0 printed, 1 store unreadable, 2 config error or store not found
    (with --json, either store error is also a JSON object with "error").
    """
    from gateway.cli_support import gateway_config_path
    from gateway.status_command import run_status

    sys.exit(run_status(gateway_config_path(config_path), as_json, lang))


@main.command()
@GATEWAY_CONFIG_OPTION
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to serve on (default: [dashboard] listen, else 127.0.0.1:8430)")
def dashboard(config_path: Path | None, listen: str | None) -> None:
    """Serve the read-only sync-status dashboard and /metrics without consuming.

    \b
    Example:
      exgate dashboard -c /etc/exgate/gateway-430100.toml --listen 127.0.0.1:8430
    Exit codes: 0 clean stop, 2 config error or address in use.
    """
    from gateway.cli_support import gateway_config_path, log_to_stderr
    from gateway.dashboard.command import run_dashboard

    log_to_stderr()
    sys.exit(run_dashboard(gateway_config_path(config_path), listen))


if __name__ == "__main__":
    main()
