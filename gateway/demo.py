"""``exgate demo``: the whole path on embedded defaults, narrated for a first-time user.

A private RabbitMQ node, two county nodes of one city (a legacy front-end database and
an XML drop folder, each with a few bad records), their agents, and the gateways of the
province, the city and both counties, each into its own SQLite store. It ends with the
status table read back from the stores and the outboxes, and stops the broker whatever
happens (error, Ctrl-C, SIGTERM). The work folder keeps the configs, stores, outboxes
and logs for the user to look at.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import click

from adapters.amqp.logs import quiet_pika
from adapters.stores.sql import SqlStore
from frontend_machine.agent_command import run_once
from frontend_machine.outbox_batches import BatchState
from gateway.broker_node import LocalBroker
from gateway.broker_state import STATE_FILE
from gateway.config import load_config
from gateway.dashboard.command import open_dashboard
from gateway.demo_data import (
    SourceSet,
    county_records,
    sample_records,
    write_drop_folder,
    write_front_db,
)
from gateway.demo_report import level_stats, node_stats, render
from gateway.demo_text import say as _say
from gateway.demo_text import word as _word
from gateway.demo_world import (
    NodeSpec,
    agent_config,
    create_gateway_user,
    declare_levels,
    gateway_config,
    provision,
)
from gateway.run import run_gateway
from schemas.errors import ConfigError, ExgateError, message_of

__all__ = ["LEVELS", "NODES", "run_demo"]

LEVELS = ("430000", "430100", "430102", "430103")  # 湖南省, 长沙市, 芙蓉区, 天心区
NODES = (NodeSpec("furong-01", "430102", "db"), NodeSpec("tianxin-01", "430103", "folder"))
CASES = 300
BAD_PER_SOURCE = 3
DASHBOARD_LISTEN = "127.0.0.1:8430"
WORKDIR_MARK = ".exgate-demo"  # the next run may empty a folder that holds it
RECEIPTS_WAIT_S = 60.0  # for the levels' receipts to reach the agents


@dataclass
class _Demo:
    """The work folder's layout and what was done in it."""

    workdir: Path
    lang: str
    broker: LocalBroker | None = None
    broker_tmp: Path | None = None
    sources: dict[str, SourceSet] = field(default_factory=dict)
    agents: dict[str, Path] = field(default_factory=dict)
    gateways: dict[str, Path] = field(default_factory=dict)

    @property
    def central(self) -> Path:
        return self.workdir / "central"

    @property
    def nodes(self) -> Path:
        return self.workdir / "nodes"

    @property
    def log(self) -> Path:
        return self.workdir / "logs" / "demo.log"


def run_demo(workdir: Path, lang: str = "zh", cases: int = CASES) -> int:
    """Run the whole path; 0 when it completed, 1 on an error, 2 when ``workdir`` is not
    the demo's to empty, 130 when interrupted."""
    started = time.monotonic()
    demo = _Demo(Path(workdir).absolute(), lang)
    if not _ours_to_empty(demo.workdir):
        _say("not-ours", lang, path=demo.workdir)
        return 2
    _fresh_workdir(demo.workdir)
    _say("workdir", lang, path=demo.workdir)
    with _logging_to(demo.log), _sigterm_interrupts():
        try:
            _run(demo, cases)
        except KeyboardInterrupt:
            _say("interrupted", lang)
            return 130
        except (ExgateError, OSError) as exc:
            logging.getLogger("exgate.demo").exception("demo failed")
            _say("failed", lang, error=message_of(exc, lang), log=demo.log)
            return 1
        finally:
            _stop_broker(demo)
    _say("where", lang, path=demo.workdir, central=demo.central, nodes=demo.nodes,
         log=demo.log)
    _say("done", lang, seconds=time.monotonic() - started)
    return _serve_dashboard(demo, interactive=sys.stdin.isatty() and sys.stdout.isatty())


def _serve_dashboard(demo: _Demo, *, interactive: bool) -> int:
    """The province's dashboard over its store: until Ctrl-C on a terminal, else only
    long enough to show that it serves."""
    config = load_config(demo.gateways[LEVELS[0]])
    store = SqlStore(config.store_url)
    try:
        try:
            server = open_dashboard(config, store, DASHBOARD_LISTEN)
        except ConfigError:  # the usual port is taken: let the system choose one
            server = open_dashboard(config, store, "127.0.0.1:0")
        with server.start():
            if not interactive:
                _say("dashboard-once", demo.lang, url=server.url)
                return 0
            _say("dashboard", demo.lang, url=server.url)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
            return 0
    finally:
        store.close()


def _run(demo: _Demo, cases: int) -> None:
    lang = demo.lang
    broker = _start_broker(demo)
    amqp = f"amqp://127.0.0.1:{broker.ports.amqp}/"
    keys = _provision_nodes(demo, broker)
    _make_sources(demo, cases)
    for node in NODES:
        home = demo.nodes / node.node_id
        source = home / ("front.db" if node.kind == "db" else "drop")
        demo.agents[node.node_id] = agent_config(home / "agent.toml", node,
                                                 key_file=keys[node.node_id],
                                                 broker_url=amqp, source=str(source))
    for division in LEVELS:
        login = create_gateway_user(broker, demo.central / "secrets", division, lang=lang)
        demo.gateways[division] = gateway_config(
            demo.central / division / "gateway.toml", division, broker_url=login.broker_url,
            password_file=login.password_file, store_url="sqlite:///store.db",
            registry=demo.central / "registry", lang=lang)
    _say("agents", lang)
    _run_agents(demo, report=True)
    _say("gateways", lang)
    _run_gateways(demo)
    _say("receipts", lang)
    _collect_receipts(demo)
    # The agents' last heartbeats (sent after the receipts) wait in the status queues:
    # without them the centre's `exgate status` would still show the batches pending.
    _run_gateways(demo, report=False)
    _say("status", lang)
    _print_status(demo)


def _ours_to_empty(workdir: Path) -> bool:
    """The work folder is new, empty, or an earlier demo's: never ``--workdir ~``."""
    if not workdir.exists():
        return True
    if not workdir.is_dir() or workdir.is_symlink():
        return False
    return not any(workdir.iterdir()) or (workdir / WORKDIR_MARK).is_file() \
        or (workdir / "logs" / "demo.log").is_file()  # a run from before the mark


def _fresh_workdir(workdir: Path) -> None:
    """Empty the work folder, first stopping a broker a crashed earlier run left in it."""
    if (workdir / "broker" / STATE_FILE).exists():
        with contextlib.suppress(ExgateError, OSError):
            LocalBroker(workdir / "broker").stop()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir.chmod(0o755)  # the rabbitmq user must traverse it to its data folder
    (workdir / WORKDIR_MARK).write_text("exgate demo work folder: emptied by the next "
                                        "`exgate demo`\n", encoding="utf-8")


def _start_broker(demo: _Demo) -> LocalBroker:
    base = demo.workdir / "broker"
    if os.geteuid() == 0 and not _reachable_by_others(demo.workdir):
        demo.broker_tmp = Path(tempfile.mkdtemp(prefix="exgate-demo-broker-"))
        demo.broker_tmp.chmod(0o755)
        base = demo.broker_tmp / "broker"
    _say("broker", demo.lang, base=base)
    if demo.broker_tmp is not None:
        _say("broker-tmp", demo.lang, base=base)
    demo.broker = LocalBroker(base)
    demo.broker.start()
    declare_levels(demo.broker, LEVELS, lang=demo.lang)
    _say("broker-up", demo.lang, port=demo.broker.ports.amqp, levels=", ".join(LEVELS))
    return demo.broker


def _reachable_by_others(path: Path) -> bool:
    """Every folder up to ``path`` can be traversed by another user (the rabbitmq user)."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in [path, *path.parents])


def _stop_broker(demo: _Demo) -> None:
    if demo.broker is None:
        return
    _say("stopping", demo.lang)
    try:
        demo.broker.stop()
    finally:
        if demo.broker_tmp is not None:
            shutil.rmtree(demo.broker_tmp, ignore_errors=True)


def _provision_nodes(demo: _Demo, broker: LocalBroker) -> dict[str, Path]:
    from adapters.amqp.topology import routing_key

    _say("nodes", demo.lang)
    keys = {}
    for node in NODES:
        home = demo.nodes / node.node_id
        keys[node.node_id] = provision(broker, demo.central / "registry", home, node,
                                     lang=demo.lang)
        _say("node", demo.lang, node=node.node_id, division=node.division,
             kind=_word(f"kind-{node.kind}", demo.lang),
             key=routing_key(node.division, node.node_id))
    return keys


def _make_sources(demo: _Demo, cases: int) -> None:
    _say("data", demo.lang, cases=cases, bad=BAD_PER_SOURCE)
    records = sample_records(demo.workdir / "samples", cases=cases)
    for node in NODES:
        home = demo.nodes / node.node_id
        mine = county_records(records, node.division)
        if node.kind == "db":
            where = home / "front.db"
            made = write_front_db(f"sqlite:///{where}", mine, bad=BAD_PER_SOURCE)
        else:
            where = home / "drop" / "inbox"
            made = write_drop_folder(where, node.division, mine, files=4, bad=BAD_PER_SOURCE)
        demo.sources[node.node_id] = made
        _say("source", demo.lang, node=node.node_id, valid=len(made.valid),
             invalid=made.invalid, where=where)


def _run_agents(demo: _Demo, *, report: bool) -> None:
    for node in NODES:
        report_text, errors = io.StringIO(), io.StringIO()
        # The agent also logs to stderr (for journald); the log file gets those records
        # already, so only its own complaints are kept from stderr.
        with contextlib.redirect_stderr(errors):
            code = run_once(demo.agents[node.node_id], demo.lang, report_text)
        logging.getLogger("exgate.demo").info("agent %s (exit %d):\n%s", node.node_id, code,
                                              report_text.getvalue())
        if code == 2:
            raise _DemoError(f"agent {node.node_id}: {errors.getvalue().strip()[-500:]}")
        if report:
            _say("agent", demo.lang, node=node.node_id, code=code)


def _collect_receipts(demo: _Demo) -> None:
    """Run the agents until every batch has its levels' receipts, or ``RECEIPTS_WAIT_S``
    passed: an agent waits only briefly for the next receipt, and on a busy machine the
    first may come later. A batch still in flight then shows as such in the table."""
    deadline = time.monotonic() + RECEIPTS_WAIT_S
    while True:
        _run_agents(demo, report=False)
        if not _awaiting_receipts(demo) or time.monotonic() >= deadline:
            return


def _awaiting_receipts(demo: _Demo) -> bool:
    return any(node_stats(demo.nodes / n.node_id / "outbox.db", n.node_id, n.division)
               .batches.get(BatchState.SENT, 0) for n in NODES)


def _run_gateways(demo: _Demo, *, report: bool = True) -> None:
    """All four levels at once, each draining its own queue into its own store;
    ``report``: say each level's exit code (a failure is an error either way)."""
    stop = threading.Event()
    codes: dict[str, int] = {}

    def drain(division: str) -> Callable[[], None]:
        return lambda: codes.__setitem__(
            division, run_gateway(demo.gateways[division], drain=True, stop=stop))

    threads = [threading.Thread(target=drain(d), name=f"gateway-{d}") for d in LEVELS]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    finally:
        stop.set()  # on Ctrl-C: the gateways stop after their current batch
        for thread in threads:
            thread.join()
    for division in LEVELS:
        if report:
            _say("gateway", demo.lang, division=division, code=codes.get(division, "?"))
        if codes.get(division) != 0:
            raise _DemoError(f"gateway {division} exited with {codes.get(division)}")


def _print_status(demo: _Demo) -> None:
    levels = [level_stats(f"sqlite:///{demo.central / d / 'store.db'}", d) for d in LEVELS]
    nodes = [node_stats(demo.nodes / n.node_id / "outbox.db", n.node_id, n.division)
             for n in NODES]
    for line in render(levels, nodes, demo.lang):
        click.echo("  " + line if line else "")


class _DemoError(ExgateError):
    """A step of the demo did not complete."""


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Logs of every component go to the demo's log file, not to the narration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet_pika()
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(saved)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the demo like Ctrl-C, so the broker is stopped too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
