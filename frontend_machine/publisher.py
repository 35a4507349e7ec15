"""The publisher: pending outbox batches → RabbitMQ, receipts → outbox, heartbeats.

One thread owns a ``Publisher`` (pika's ``BlockingConnection`` is not thread-safe) and
calls ``step`` in a loop, or ``flush`` once for ``agent once``.

- **Confirms.** Each batch is published ``mandatory`` on a confirm-mode channel;
  ``mark_sent`` only runs after the broker's ack. A nack or a return (no queue bound)
  leaves the batch pending (``mark_unsent``) and pauses publishing with backoff; the
  connection stays up. Batches go out in outbox order, so after any failure the same
  batch is retried first and the outbox drains in order.
- **Reconnects.** Losing the connection, or the broker closing the channel (403 topic
  permission, 406 ``user_id`` mismatch), closes the link; it is opened again forever
  with jittered exponential backoff (0.5 s doubling up to 60 s). A login alone does not
  reset the backoff, since most refusals only come after it: a confirmed publish does,
  or a link that served ``healthy_seconds`` without an error. Nothing is dropped:
  batches stay in the outbox until confirmed. A refusal is logged as an error when it
  is new, then ever less often while it lasts (``Reminder``). A refused login
  (``LoginRefused``) ends ``flush`` at once: retrying cannot cure it within a run. In
  ``agent run`` each try after one rereads the node's credentials file (``reread``), so
  a file the centre replaced (``node enable``: a new password) is used without a restart.
- **Receipts** are consumed on the same connection and acked after the outbox commit.
  A receipt the outbox cannot record is held unacked on the link (never handed back:
  a quorum queue counts every return toward its delivery limit) and recorded again with
  its own backoff while publishing goes on; a receipts consumer the broker refused is
  asked for again with its own backoff too.
- **Heartbeats** go to ``exgate.status`` every ``heartbeat_seconds`` while connected,
  and ``flush`` ends with one after the receipts waiting on the broker, so the centre
  sees the outbox as ``agent once`` leaves it, not as it found it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from adapters.amqp.errors import BrokerRefused, LoginRefused, Nacked, Unroutable
from adapters.amqp.topology import RECORDS_EXCHANGE, STATUS_EXCHANGE
from frontend_machine.backoff import Backoff, Reminder
from frontend_machine.envelope import build_envelope
from frontend_machine.heartbeat import Heartbeat, heartbeat_body, heartbeat_properties
from frontend_machine.link import BrokerLink, Delivery, LinkSettings, ReceiptHandler, Verdict
from frontend_machine.outbox import Outbox
from frontend_machine.publisher_settings import FlushResult, PublisherSettings, login_of
from frontend_machine.receipts import apply_receipt
from frontend_machine.report import say
from schemas.errors import (
    ExgateError,
    FatalError,
    RejectedBatch,
    RejectedRecord,
    RetriableError,
    message_of,
)
from schemas.messages import Localized

__all__ = ["Publisher"]

log = logging.getLogger("exgate.agent.publisher")

LinkFactory = Callable[[LinkSettings, ReceiptHandler | None], BrokerLink]


@dataclass
class _Counters:
    published: int = 0
    receipts: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_said: str | None = None  # last_error in the agent's language
    source_lag_s: float | None = None
    extra_error: str | None = None
    login_refused: LoginRefused | None = None  # the last login, when the broker refused it


class Publisher:
    """Moves confirmed batches out of ``outbox``; see the module docstring."""

    def __init__(self, outbox: Outbox, settings: PublisherSettings, *,
                 link_factory: LinkFactory = BrokerLink.open,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep,
                 reread: Callable[[], PublisherSettings] | None = None) -> None:
        self.outbox = outbox
        self.settings = settings
        self._reread = reread
        self._reread_error: str | None = None
        self.counters = _Counters()
        self._open_link = link_factory
        self._clock = clock
        self._sleep = sleep
        self._link: BrokerLink | None = None
        self._lock = threading.Lock()
        self._reconnect = Backoff(settings.backoff_initial, settings.backoff_max, clock)
        self._republish = Backoff(settings.backoff_initial, settings.backoff_max, clock)
        self._resubscribe = Backoff(settings.backoff_initial, settings.backoff_max, clock)
        self._rerecord = Backoff(settings.backoff_initial, settings.backoff_max, clock)
        self._refusals = Reminder(clock=clock)
        self._connected_at = 0.0
        self._next_heartbeat = 0.0
        self._node = settings.identity.node_id
        self._lang = settings.lang

    # -- public ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link is not None

    def step(self, wait: float) -> bool:
        """Connect if due, publish what is pending, then serve events for up to ``wait``.

        Returns True when more batches are pending and could go out right away.
        """
        if self._link is None and not self._connect(wait):
            return False
        more = False
        try:
            self._resubscribe_if_due()
            self._rerecord_if_due()
            if self._republish.ready():
                more = self._publish_pending()
            self._heartbeat_if_due()
            self._serve(0.0 if more else wait)
            self._healthy_if_due()
        except (Unroutable, Nacked) as exc:
            self._refused_batch(exc)
        except RetriableError as exc:
            self._lost(exc)
        return more

    def flush(self, timeout: float, stop: threading.Event | None = None) -> FlushResult:
        """Publish everything pending, waiting at most ``timeout`` for the broker, or
        until ``stop`` is set (SIGINT, SIGTERM): what is left stays in the outbox."""
        deadline = self._clock() + timeout
        before, failures = self.counters.published, self.counters.failures
        stopping = stop if stop is not None else threading.Event()
        told = False
        self._next_heartbeat = 0.0
        while ((remaining := deadline - self._clock()) > 0
               and self.counters.login_refused is None and not stopping.is_set()):
            more = self.step(min(0.2, remaining))
            if not more and self._link is not None and not self._pending():
                break
            if not told and self.counters.failures > failures:  # why the run goes on
                told = True
                log.info(say("flush-waiting", self._lang,
                             seconds=max(round(deadline - self._clock()), 1)),
                         extra={"node": self._node})
        self._finish(self._clock() if stopping.is_set() else deadline)
        return FlushResult(self.counters.published - before, self.outbox.depth().pending_batches,
                           self.counters.last_error, self.counters.last_error_said,
                           self.counters.login_refused)

    def run(self, stop: threading.Event, idle_wait: float = 0.25) -> None:
        """``step`` until ``stop`` is set; unexpected errors are logged and retried."""
        while not stop.is_set():
            try:
                self.step(idle_wait)
            except FatalError as exc:
                log.error(say("publisher-error", self._lang, error=self._note_error(exc)),
                          extra={"node": self._node})
                stop.wait(self._reconnect.failure())

    def wake(self) -> None:
        """From another thread: new batches were sealed."""
        with self._lock:
            if self._link is not None:
                self._link.wake()

    def note_status(self, *, source_lag_s: float | None, error: str | None) -> None:
        """What the agent knows for the next heartbeat (source lag, its own last error)."""
        self.counters.source_lag_s = source_lag_s
        self.counters.extra_error = error

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    # -- connection ---------------------------------------------------------------------

    def _connect(self, wait: float) -> bool:
        if not self._reconnect.ready():
            self._sleep(min(wait, self._reconnect.remaining()))
            if not self._reconnect.ready():
                return False
        if self.counters.login_refused is not None:
            self._reread_login()
        handler = self._on_receipt if self.settings.consume_receipts else None
        try:
            link = self._open_link(self.settings.link, handler)
        except RetriableError as exc:
            self._lost(exc)
            return False
        with self._lock:
            self._link = link
        self.counters.login_refused = None
        if self._reconnect.failures:
            log.info(say("reconnected", self._lang, failures=self._reconnect.failures),
                     extra={"node": self._node})
        self._connected_at = self._clock()
        self._next_heartbeat = 0.0
        self._rerecord.success()  # the lost link's held receipts went back to the broker
        return True

    def _reread_login(self) -> None:
        """After a refused login, the node's credentials file may have been replaced
        (``node enable`` writes a new password, ``rotate-key`` a new key): the next try
        logs in and seals with what it holds now, without a restart."""
        if self._reread is None:
            return
        try:
            fresh = self._reread()
        except ExgateError as exc:  # being replaced, or broken: the old login is tried again
            said = exc.message(self._lang)
            if said != self._reread_error:  # once per cause: a copy left 0644, another node's
                log.warning(say("login-not-reread", self._lang, error=said),
                            extra={"node": self._node})
            self._reread_error = said
            return
        self._reread_error = None
        if login_of(fresh) == login_of(self.settings):
            return
        self.settings = replace(self.settings, link=fresh.link, identity=fresh.identity)
        log.info(say("login-reread", self._lang, user=fresh.link.broker_user),
                 extra={"node": self._node})

    def _link_worked(self) -> None:
        """Something went through the link: the failures before it are over."""
        self._reconnect.success()
        self._refusals.reset()
        self.counters.last_error = self.counters.last_error_said = None

    def _healthy_if_due(self) -> None:
        served = self._clock() - self._connected_at
        if (self._link is not None and self._reconnect.failures
                and not self._republish.failures and served >= self.settings.healthy_seconds):
            self._link_worked()

    def _resubscribe_if_due(self) -> None:
        assert self._link is not None
        if (not self.settings.consume_receipts or self._link.consuming
                or not self._resubscribe.ready()):
            return
        if self._link.consume_receipts(self.settings.link, self._on_receipt):
            self._resubscribe.success()
        else:
            self._resubscribe.failure()

    def _rerecord_if_due(self) -> None:
        assert self._link is not None
        if not self._link.held:
            return
        if not self._rerecord.failures:  # newly held: the outbox just failed, wait first
            self._rerecord.failure()
            return
        if not self._rerecord.ready():
            return
        if self._link.retry_held(self._on_receipt):
            self._rerecord.success()
        else:
            self._rerecord.failure()

    def _lost(self, exc: RetriableError) -> None:
        self.close()
        delay = self._reconnect.failure()
        self.counters.failures += 1
        error = self._note_error(exc)
        if isinstance(exc, LoginRefused):
            self.counters.login_refused = exc
        if isinstance(exc, BrokerRefused):
            self._refused(exc, error, delay)
        elif self._reconnect.failures == 1:
            log.warning(say("broker-lost", self._lang, error=error, delay=delay),
                        extra={"node": self._node})
        else:
            log.debug("%s; next try in %.1f s", exc, delay, extra={"node": self._node})

    def _refused(self, exc: BrokerRefused, error: str, delay: float) -> None:
        """An error when the refusal is new, then ever less often while it lasts."""
        if not self._refusals.due(str(exc)):
            log.debug("%s; next try in %.1f s", exc, delay, extra={"node": self._node})
            return
        text = "login-refused" if isinstance(exc, LoginRefused) else "broker-refused"
        log.error(say(text, self._lang, error=error, delay=delay), extra={"node": self._node})

    def _serve(self, seconds: float) -> None:
        assert self._link is not None
        self._link.process(seconds)

    # -- batches ------------------------------------------------------------------------------

    def _pending(self) -> bool:
        return bool(self.outbox.next_pending_batches(1))

    def _publish_pending(self) -> bool:
        batches = self.outbox.next_pending_batches(self.settings.batches_per_step + 1)
        for batch in batches[:self.settings.batches_per_step]:
            self._publish_batch(batch.batch_id, batch.created_at)
        return len(batches) > self.settings.batches_per_step

    def _publish_batch(self, batch_id: str, created_at: float) -> None:
        assert self._link is not None
        try:
            # Sealed the same way every time: a resend must be byte-identical.
            envelope = build_envelope(batch_id, self.outbox.batch_payloads(batch_id),
                                      self.settings.identity, created=created_at)
        except (FatalError, RejectedRecord, RejectedBatch, ValueError) as exc:
            log.error(say("batch-unbuildable", self._lang, error=message_of(exc, self._lang)),
                      extra={"node": self._node, "batch": batch_id})
            self.outbox.mark_failed(batch_id, f"cannot build the batch message: {exc}")
            return
        try:
            self._link.publish(RECORDS_EXCHANGE, self.settings.routing_key, envelope.body,
                               envelope.properties, mandatory=True,
                               doing=Localized(f"发送批次 {batch_id}",
                                               f"publishing batch {batch_id}"))
        except RetriableError as exc:
            self.outbox.mark_unsent(batch_id, str(exc))
            raise
        self.outbox.mark_sent(batch_id)
        self._republish.success()
        self._link_worked()
        self.counters.published += 1
        log.debug("batch confirmed by the broker (%d records)", envelope.record_count,
                  extra={"node": self._node, "batch": batch_id})

    def _refused_batch(self, exc: RetriableError) -> None:
        delay = self._republish.failure()
        self.counters.failures += 1
        log.warning(say("batch-kept", self._lang, error=self._note_error(exc), delay=delay),
                    extra={"node": self._node})

    def _note_error(self, exc: Exception) -> str:
        """Keep ``exc`` as the last error (English, and said); returns it said."""
        self.counters.last_error = str(exc)
        self.counters.last_error_said = message_of(exc, self._lang)
        return self.counters.last_error_said

    # -- receipts and heartbeats ---------------------------------------------------------------

    def _on_receipt(self, delivery: Delivery) -> Verdict:
        verdict = apply_receipt(self.outbox, delivery, self._lang)
        self.counters.receipts += verdict is Verdict.ACK
        return verdict

    def _finish(self, deadline: float) -> None:
        """The end of a flush: the receipts already on their way (served in slices while
        they keep coming, until ``deadline``), then a last heartbeat. Best effort: a
        link lost now only means the next run brings them."""
        if self._link is None:
            return
        try:
            while True:
                received = self.counters.receipts
                self._serve(min(0.2, max(0.0, deadline - self._clock())))
                if self.counters.receipts == received or self._clock() >= deadline:
                    break
            if self._clock() < deadline:  # its confirm may wait: never past the timeout
                self._heartbeat()
        except RetriableError as exc:
            self._lost(exc)

    def _heartbeat_if_due(self) -> None:
        now = self._clock()
        if now < self._next_heartbeat or self._link is None:
            return
        self._heartbeat()

    def _heartbeat(self) -> None:
        """Outbox depth, source lag and last error to ``exgate.status``, now."""
        assert self._link is not None
        self._next_heartbeat = self._clock() + self.settings.heartbeat_seconds
        errors = (self.counters.extra_error, self.counters.last_error)
        beat = Heartbeat(self._node, self.settings.identity.division,
                         self.counters.source_lag_s,
                         "; ".join(error for error in errors if error) or None)
        wall = time.time()
        self._link.publish(STATUS_EXCHANGE, self.settings.routing_key,
                           heartbeat_body(beat, self.outbox, wall),
                           heartbeat_properties(self.settings.identity.broker_user, wall),
                           mandatory=False, doing=Localized("发送心跳", "sending a heartbeat"))
