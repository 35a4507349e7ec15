"""What a ``Publisher`` is given and what its ``flush`` reports.

``PublisherSettings``: the broker link, the node's identity (keys and broker user), and
the publisher's heartbeat, batch and backoff timings; ``login_of`` is what rereading the
node's credentials file may change. ``FlushResult``: what one bounded flush (``agent
once``) published, left pending and was refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.amqp.errors import LoginRefused
from adapters.amqp.topology import routing_key
from frontend_machine.envelope import NodeIdentity
from frontend_machine.link import LinkSettings

__all__ = ["FlushResult", "PublisherSettings", "login_of"]


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    link: LinkSettings
    identity: NodeIdentity
    heartbeat_seconds: float = 30.0
    batches_per_step: int = 20
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    healthy_seconds: float = 60.0
    consume_receipts: bool = True

    @property
    def routing_key(self) -> str:
        return routing_key(self.identity.division, self.identity.node_id)

    @property
    def lang(self) -> str:
        """The language of the log lines ("zh" or "en"): the link's, set by the agent."""
        return self.link.lang


@dataclass(frozen=True, slots=True)
class FlushResult:
    published: int
    pending: int
    last_error: str | None  # English, as kept in the outbox and sent in heartbeats
    last_error_said: str | None = None  # the same in the agent's language, for its log
    login_refused: LoginRefused | None = None  # why the flush stopped before its timeout


def login_of(settings: PublisherSettings) -> tuple[LinkSettings, str, int]:
    """What a reread changes: the login, and the key version sealed with (key objects
    compare by identity)."""
    return settings.link, settings.identity.broker_user, settings.identity.keys.key_version
