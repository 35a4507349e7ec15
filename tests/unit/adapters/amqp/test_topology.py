"""Routing and binding keys, and what ``declare_topology`` asks the broker for."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.amqp.topology import (
    DEAD_EXCHANGE,
    HOLDING_DELIVERY_LIMIT,
    RECEIPTS_EXCHANGE,
    RECORDS_EXCHANGE,
    STATUS_EXCHANGE,
    binding_key,
    check_division,
    check_node_id,
    declare_level,
    declare_node_queues,
    declare_topology,
    level_queue,
    receipts_queue,
    routing_key,
)
from schemas.errors import ConfigError


def topic_matches(binding: str, key: str) -> bool:
    """RabbitMQ topic matching, for the keys we use (``#`` only at the end)."""
    pattern = re.escape(binding).replace(r"\#", ".*").replace(r"\*", "[^.]+")
    pattern = pattern.replace(r"\..*", r"(\..*)?")
    return re.fullmatch(pattern, key) is not None


@pytest.mark.parametrize(("division", "key"), [
    ("430102", "430000.430100.430102.n1"),
    ("430100", "430000.430100.430100.n1"),
    ("430000", "430000.430000.430000.n1"),
    ("429004", "420000.429000.429004.n1"),
])
def test_routing_key(division, key):
    assert routing_key(division, "n1") == key


@pytest.mark.parametrize(("division", "key"), [
    ("430000", "430000.#"), ("430100", "430000.430100.#"),
    ("430102", "430000.430100.430102.#")])
def test_binding_key(division, key):
    assert binding_key(division) == key


@pytest.mark.parametrize(("node", "levels"), [
    ("430102", {"430000", "430100", "430102"}),
    ("430100", {"430000", "430100"}),
    ("430000", {"430000"}),
    ("430103", {"430000", "430100"}),
    ("430200", {"430000", "430200"}),
])
def test_a_node_reaches_exactly_the_levels_above_it(node, levels):
    all_levels = ["430000", "430100", "430102", "430200", "440000"]
    hit = {lv for lv in all_levels if topic_matches(binding_key(lv), routing_key(node, "n"))}
    assert hit == levels


@pytest.mark.parametrize("bad", ["43010", "4301022", "030102", "abcdef"])
def test_bad_division_refused(bad):
    with pytest.raises(ValueError, match="6-digit"):
        routing_key(bad, "n1")


@pytest.mark.parametrize("bad", ["", "a.b", "a#", "a*", "x" * 65])
def test_bad_node_id_refused(bad):
    with pytest.raises(ValueError, match="node id"):
        routing_key("430102", bad)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **kw: self.calls.append((name, a, kw))


def test_declare_topology_level_queue_arguments_are_explicit():
    channel = Recorder()
    declare_topology(channel, ["430102"])
    exchanges = {c[1][0]: c[2]["exchange_type"] for c in channel.calls
                 if c[0] == "exchange_declare"}
    assert exchanges == {RECORDS_EXCHANGE: "topic", DEAD_EXCHANGE: "topic",
                         RECEIPTS_EXCHANGE: "direct", STATUS_EXCHANGE: "topic"}
    queues = {c[1][0]: c[2] for c in channel.calls if c[0] == "queue_declare"}
    args = queues[level_queue("430102")]["arguments"]
    assert args == {"x-queue-type": "quorum", "x-delivery-limit": 1_000,
                    "x-dead-letter-exchange": "exgate.dead",
                    "x-dead-letter-routing-key": "exgate.level.430102",
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish"}
    assert all(q["durable"] and q["arguments"]["x-queue-type"] == "quorum"
               for q in queues.values())
    for holding in ("exgate.dead.430102", "exgate.status.430102"):  # RabbitMQ 4 drops at 20
        assert queues[holding]["arguments"]["x-delivery-limit"] == HOLDING_DELIVERY_LIMIT
    binds = {(c[1][0], c[1][1], c[1][2]) for c in channel.calls if c[0] == "queue_bind"}
    key = "430000.430100.430102.#"
    assert binds == {("exgate.level.430102", RECORDS_EXCHANGE, key),
                     ("exgate.dead.430102", DEAD_EXCHANGE, "exgate.level.430102"),
                     ("exgate.status.430102", STATUS_EXCHANGE, key)}
    declared = [c[1][0] for c in channel.calls if c[0] == "queue_declare"]
    assert declared[-1] == "exgate.level.430102"  # last: the one an older exgate made


def test_a_passive_level_declaration_only_finds_and_binds():
    channel = Recorder()
    declare_level(channel, "430102", passive=True)
    declares = [(c[1][0], c[2]) for c in channel.calls if c[0] == "queue_declare"]
    assert declares == [(q, {"passive": True}) for q in (
        "exgate.dead.430102", "exgate.status.430102", "exgate.level.430102")]
    assert sum(c[0] == "queue_bind" for c in channel.calls) == 3


def test_declare_node_queues():
    channel = Recorder()
    declare_node_queues(channel, "n1")
    assert [c[0] for c in channel.calls] == ["queue_declare", "queue_bind"]
    assert channel.calls[0][2]["arguments"] == {"x-queue-type": "quorum",
                                                "x-delivery-limit": HOLDING_DELIVERY_LIMIT}
    assert channel.calls[1][1] == (receipts_queue("n1"), RECEIPTS_EXCHANGE, "n1")


def test_a_bad_division_or_node_id_is_a_config_error_in_both_languages() -> None:
    with pytest.raises(ConfigError) as division:
        check_division("43010")
    assert "行政区划代码 '43010'" in division.value.message("zh")
    assert "is not a 6-digit" in division.value.message("en")
    with pytest.raises(ConfigError) as province:  # no province 40: a typo of 430102
        routing_key("403102", "n1")
    assert "前两位须为省级代码" in province.value.message("zh")
    with pytest.raises(ValueError) as node:  # still a ValueError for the registry's scan
        check_node_id("bad id!")
    assert isinstance(node.value, ConfigError) and "节点 ID" in node.value.message("zh")
