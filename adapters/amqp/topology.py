"""Exchange, queue and routing-key names, and their idempotent declarations.

Both sides import this module: the agent for routing keys, the gateway and the
provisioning code for declarations. Queue arguments are explicit because RabbitMQ 4.0
changed the quorum-queue defaults (a delivery limit of 20 that then drops messages).
At-least-once dead-lettering needs ``x-overflow = reject-publish`` on the source queue;
without it RabbitMQ silently falls back to at-most-once.

A dead letter keeps its routing key unless the queue names another, and a county
node's key matches the county, city and province bindings alike: so each level queue
dead-letters with its own name as the key, and its dead queue is bound to that name
alone. One dead letter, one dead queue, even with every level on one broker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from schemas.divisions import DIVISION_FORM, Level, division_path, is_division, level_of
from schemas.errors import ConfigError

__all__ = [
    "CONTENT_TYPE",
    "DEAD_EXCHANGE",
    "DELIVERY_LIMIT",
    "HOLDING_DELIVERY_LIMIT",
    "RECEIPTS_EXCHANGE",
    "RECORDS_EXCHANGE",
    "STATUS_EXCHANGE",
    "BadName",
    "binding_key",
    "dead_queue",
    "declare_level",
    "declare_node_queues",
    "declare_topology",
    "level_queue",
    "level_queue_arguments",
    "node_of",
    "receipts_queue",
    "routing_key",
    "status_queue",
]

RECORDS_EXCHANGE = "exgate.records"
DEAD_EXCHANGE = "exgate.dead"
RECEIPTS_EXCHANGE = "exgate.receipts"
STATUS_EXCHANGE = "exgate.status"
CONTENT_TYPE = "application/vnd.exgate.sealed"
APP_ID = "exgate-agent"
SCHEMA_VERSION = 1
# A level queue dead-letters a batch returned this many times. The gateway itself keeps
# a batch that fails for no transient reason as a failed batch (poison_attempts), and
# holds one while the store is away, returning it once per hold_seconds (20 min): at 20,
# a weekend's database outage (RabbitMQ before 4.3 counts each return) sent batches to
# exgate.dead.*. At 1,000 a hold outlasts two weeks, and a batch that crashes the gateway
# process itself still ends in the dead queue, from which the gateway keeps it as a
# failed batch (gateway.dead_letters).
DELIVERY_LIMIT = 1_000
# Receipts, heartbeats and dead letters have no dead-letter queue of their own, and
# RabbitMQ 4 drops a quorum-queue message returned 20 times by default: a peek in the
# management UI, or an agent's connection lost while it holds receipts, each count one.
# A limit this high is never reached. -1 means "no limit" on 4.x only: RabbitMQ 3.10
# accepts it and drops the message at its first return.
HOLDING_DELIVERY_LIMIT = 1_000_000

_NODE_ID = re.compile(r"[0-9A-Za-z_\-]{1,64}")


class Channel(Protocol):
    """The part of ``pika.adapters.blocking_connection.BlockingChannel`` we declare with."""

    def exchange_declare(self, exchange: str, exchange_type: Any = ..., passive: bool = ...,
                         durable: bool = ..., auto_delete: bool = ..., internal: bool = ...,
                         arguments: Mapping[str, Any] | None = ...) -> Any: ...

    def queue_declare(self, queue: str, passive: bool = ..., durable: bool = ...,
                      exclusive: bool = ..., auto_delete: bool = ...,
                      arguments: Mapping[str, Any] | None = ...) -> Any: ...

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = ...,
                   arguments: Mapping[str, Any] | None = ...) -> Any: ...


class BadName(ConfigError, ValueError):
    """A division code or node ID that cannot name a queue or a routing key; still a
    ``ValueError`` for callers that sort out names (the registry's file scan)."""


def check_division(code: str) -> str:
    if not is_division(code):
        raise BadName(f"division {code!r} is not {DIVISION_FORM[0]}",
                      zh=f"行政区划代码 {code!r} 不是 {DIVISION_FORM[1]}")
    return code


def check_node_id(node_id: str) -> str:
    if not _NODE_ID.fullmatch(node_id):
        raise BadName(f"node id {node_id!r} must be 1-64 of [0-9A-Za-z_-]",
                      zh=f"节点 ID {node_id!r} 须为 1 至 64 个 [0-9A-Za-z_-] 字符")
    return node_id


def routing_key(node_division: str, node_id: str) -> str:
    """``430000.430100.430102.<node_id>``: the node's division path, then its ID."""
    path = division_path(check_division(node_division))
    return ".".join(path) + "." + check_node_id(node_id)


def node_of(key: str) -> str:
    """The node a routing key names: its last part (not checked: a sender's text)."""
    return key.rpartition(".")[2]


def binding_key(level_division: str) -> str:
    """``430000.#`` for a province, ``430000.430100.#`` for a city, three codes for a county."""
    province, city, county = division_path(check_division(level_division))
    level = level_of(level_division)
    parts = {Level.PROVINCE: [province], Level.CITY: [province, city],
             Level.COUNTY: [province, city, county]}[level]
    return ".".join([*parts, "#"])


def level_queue(division: str) -> str:
    return f"exgate.level.{check_division(division)}"


def dead_queue(division: str) -> str:
    return f"exgate.dead.{check_division(division)}"


def status_queue(division: str) -> str:
    return f"exgate.status.{check_division(division)}"


def receipts_queue(node_id: str) -> str:
    return f"exgate.receipts.{check_node_id(node_id)}"


def holding_queue_arguments() -> dict[str, Any]:
    """Quorum queues that only hold messages for a reader: receipts, status, dead letters."""
    return {"x-queue-type": "quorum", "x-delivery-limit": HOLDING_DELIVERY_LIMIT}


def level_queue_arguments(division: str,
                          delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        "x-dead-letter-routing-key": level_queue(division),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def declare_exchanges(channel: Channel, *, passive: bool = False) -> None:
    """The four exchanges; ``passive`` only finds them (404 closes the channel when one
    is missing), which needs no configure permission on them."""
    for name, kind in ((RECORDS_EXCHANGE, "topic"), (DEAD_EXCHANGE, "topic"),
                       (RECEIPTS_EXCHANGE, "direct"), (STATUS_EXCHANGE, "topic")):
        channel.exchange_declare(name, exchange_type=kind, durable=True, passive=passive)


def declare_level(channel: Channel, division: str, *, delivery_limit: int = DELIVERY_LIMIT,
                  passive: bool = False) -> None:
    """The level's dead-letter, status and records queues, bound; the records queue last.

    RabbitMQ refuses to redeclare a queue with other arguments (PRECONDITION_FAILED,
    which closes a pika channel): a records queue an older exgate declared then fails
    last, with the rest in place. ``passive`` takes the queues as they stand, whatever
    arguments made them, and only binds them (each must exist).
    """
    key = binding_key(division)
    queues = (
        (dead_queue(division), holding_queue_arguments(), DEAD_EXCHANGE, level_queue(division)),
        # No x-message-ttl, which could never be changed: heartbeats carry their own
        # expiration (frontend_machine.heartbeat).
        (status_queue(division), holding_queue_arguments(), STATUS_EXCHANGE, key),
        (level_queue(division), level_queue_arguments(division, delivery_limit),
         RECORDS_EXCHANGE, key),
    )
    for queue, arguments, exchange, routing in queues:
        if passive:
            channel.queue_declare(queue, passive=True)
        else:
            channel.queue_declare(queue, durable=True, arguments=arguments)
        channel.queue_bind(queue, exchange, routing)


def declare_node_queues(channel: Channel, node_id: str) -> None:
    """The node's receipts queue, bound on ``exgate.receipts`` with its ID."""
    queue = receipts_queue(node_id)
    channel.queue_declare(queue, durable=True, arguments=holding_queue_arguments())
    channel.queue_bind(queue, RECEIPTS_EXCHANGE, node_id)


def declare_topology(channel: Channel, level_divisions: Iterable[str] = (), *,
                     delivery_limit: int = DELIVERY_LIMIT) -> None:
    """The four exchanges and, per level division, its queues; safe to repeat."""
    declare_exchanges(channel)
    for division in level_divisions:
        declare_level(channel, division, delivery_limit=delivery_limit)
