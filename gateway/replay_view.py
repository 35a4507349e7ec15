"""The operators' view of a level's batches: ``batches list`` and ``batches show``.

The failed messages kept in ``ST_FAILED_BATCH`` (``failed_rows``, the rows ``Replayer``
replays), the newest stored and failed batches in one list, and what a failed body
holds, unsealed with the registry's key, with secrets in its headers masked. Reads take
no write lock (``read_only``): on SQLite they read a snapshot beside a running gateway,
which they neither wait for nor hold up. Apart from ``gateway.replay`` because it only
reads; replaying is what writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import exc as sa_exc

from adapters.sealing import SealError, unseal
from adapters.stores.base import NO_BATCH_ID
from adapters.stores.sql import SqlStore
from adapters.stores.sql_engine import READ_ONLY
from gateway.pipeline import Delivery, NodeDirectory
from schemas.errors import RetriableError
from schemas.messages import Localized
from schemas.reader import DocumentReader

__all__ = [
    "BatchRow",
    "FailedRow",
    "Preview",
    "Text",
    "english",
    "failed_rows",
    "list_batches",
    "preview",
    "read_only",
    "reading",
    "stored_batch",
]

PREVIEW_RECORDS = 5
SECRET_HEADERS = ("password", "dek", "key", "token", "secret")
Text = str | Localized   # a sentence made here, or text the store kept as written


def english(text: Text | None) -> str | None:
    """``text`` for JSON, which stays the same whatever ``--lang`` says."""
    return text.en if isinstance(text, Localized) else text


@dataclass(frozen=True)
class FailedRow:
    """One row of ``ST_FAILED_BATCH``: a refused message, kept to be replayed."""

    failed_id: int
    batch_id: str
    node_id: str | None
    reason: str
    detail: str
    routing_key: str
    user_id: str | None
    headers: dict[str, Any]
    body_sha256: str
    body: bytes = field(repr=False)
    received_at: datetime
    replayed_at: datetime | None

    def delivery(self) -> Delivery:
        """The message as the broker handed it over the first time, and when."""
        return Delivery(self.routing_key, self.body, None if self.batch_id == NO_BATCH_ID
                        else self.batch_id, self.user_id, self.headers,
                        received_at=self.received_at)

    def safe_headers(self) -> dict[str, Any]:
        """Headers for display: anything that smells of a secret is masked."""
        return {k: ("***" if any(s in k.lower() for s in SECRET_HEADERS) and
                    k != "x-exgate-key-version" else v) for k, v in self.headers.items()}


@dataclass(frozen=True)
class BatchRow:
    """A line of ``batches list``: a stored batch or a failed message."""

    batch_id: str
    node_id: str | None
    state: str                # stored | failed | replayed
    at: datetime
    records: int | None
    reason: str | None
    detail: Text | None

    def to_json(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "node_id": self.node_id, "state": self.state,
                "at": self.at.isoformat(sep=" "), "records": self.records,
                "reason": self.reason, "detail": english(self.detail)}


@contextmanager
def reading(store: SqlStore, doing: str) -> Iterator[None]:
    """The store's errors while ``doing`` as ``RetriableError``: it is away or busy."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        raise RetriableError(f"cannot {doing} at {store.redacted_url}: "
                             f"{str(getattr(exc, 'orig', exc)).splitlines()[0][:300]}") \
            from exc


@contextmanager
def read_only(store: SqlStore, doing: str) -> Iterator[Connection]:
    """A connection that never takes the write lock (``adapters.stores.sql_engine._on_begin``)."""
    with reading(store, doing), store.engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        yield conn


def failed_rows(store: SqlStore, batch_ids: Sequence[str] = (), *,
                outstanding: bool = True, node_id: str | None = None,
                since: datetime | None = None) -> list[FailedRow]:
    """Failed messages, oldest first; ``outstanding`` leaves out replayed ones."""
    f = store.schema.failed
    query = select(f).order_by(f.c.FAILED_ID)
    if batch_ids:
        query = query.where(f.c.BATCH_ID.in_(list(batch_ids)))
    if outstanding:
        query = query.where(f.c.REPLAYED_AT.is_(None))
    if node_id is not None:
        query = query.where(f.c["NODE_ID"] == node_id)
    if since is not None:
        query = query.where(f.c["RECEIVED_AT"] >= since)
    with read_only(store, "read failed batches") as conn:
        return [_failed_row(row) for row in conn.execute(query).mappings()]


def _failed_row(row: Any) -> FailedRow:
    try:
        headers = json.loads(row["HEADERS"])
    except ValueError:
        headers = {}
    return FailedRow(int(row["FAILED_ID"]), row["BATCH_ID"], row["NODE_ID"], row["REASON"],
                     row["DETAIL"], row["ROUTING_KEY"], row["USER_ID"],
                     headers if isinstance(headers, dict) else {}, row["BODY_SHA256"],
                     bytes(row["BODY"]), row["RECEIVED_AT"], row["REPLAYED_AT"])


def list_batches(store: SqlStore, *, failed_only: bool = False, node_id: str | None = None,
                 since: datetime | None = None, limit: int = 200) -> list[BatchRow]:
    """The newest ``limit`` batches (stored and failed), oldest of them first."""
    rows = [BatchRow(r.batch_id, r.node_id, "replayed" if r.replayed_at else "failed",
                     r.received_at, _header_int(r.headers, "x-exgate-records"), r.reason,
                     r.detail)
            for r in failed_rows(store, outstanding=failed_only, node_id=node_id, since=since)]
    if not failed_only:
        rows.extend(_stored_batches(store, node_id, since, limit))
    rows.sort(key=lambda r: (r.at, r.batch_id))
    return rows[-limit:] if limit > 0 else rows


def stored_batch(store: SqlStore, batch_id: str) -> BatchRow | None:
    """The stored batch ``batch_id``, or None when the store does not hold it."""
    found = _stored_batches(store, None, None, 1, batch_id)
    return found[0] if found else None


def _stored_batches(store: SqlStore, node_id: str | None, since: datetime | None,
                    limit: int, batch_id: str | None = None) -> list[BatchRow]:
    b = store.schema.batch
    query = select(b.c.BATCH_ID, b.c.NODE_ID, b.c.STORED_AT, b.c.RECORDS, b.c.STORED,
                   b.c.DUPLICATES, b.c.CONFLICTS).order_by(b.c.STORED_AT.desc()).limit(limit)
    if node_id is not None:
        query = query.where(b.c["NODE_ID"] == node_id)
    if since is not None:
        query = query.where(b.c["STORED_AT"] >= since)
    if batch_id is not None:
        query = query.where(b.c["BATCH_ID"] == batch_id)
    with read_only(store, "read stored batches") as conn:
        return [BatchRow(r.BATCH_ID, r.NODE_ID, "stored", r.STORED_AT, r.RECORDS, None,
                         Localized(f"新入库 {r.STORED}，重复 {r.DUPLICATES}，"
                                   f"冲突 {r.CONFLICTS}",
                                   f"stored {r.STORED}, duplicates {r.DUPLICATES}, "
                                   f"conflicts {r.CONFLICTS}"))
                for r in conn.execute(query)]


def _header_int(headers: dict[str, Any], name: str) -> int | None:
    value = headers.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- show ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What ``batches show`` can tell about a failed body without revealing secrets."""

    opened: bool
    why_not: Text | None = None
    head: dict[str, str] = field(default_factory=dict)
    records: int = 0
    first: tuple[tuple[str, dict[str, str]], ...] = ()
    issues: tuple[str, ...] = ()


def preview(row: FailedRow, registry: NodeDirectory, limit: int = PREVIEW_RECORDS) -> Preview:
    """Unseal with the registry's key when possible; the HEAD and the first records."""
    version = _header_int(row.headers, "x-exgate-key-version")
    # The body is sealed for the node it names, which a refused row may not be filed under.
    claimed = row.headers.get("x-exgate-node")
    node_id = claimed if isinstance(claimed, str) else row.node_id
    if node_id is None or version is None:
        return Preview(False, Localized("报文头中没有节点或密钥版本",
                                        "no node or key version in the headers"))
    verifier = registry.verifier(node_id, version)
    if verifier is None:
        return Preview(False, Localized(
            f"节点 {node_id} 的密钥版本 {version} 不在注册表中（或该节点已停用）",
            f"node {node_id} key version {version} is not in the registry (or the node "
            "is disabled)"))
    try:
        plain = unseal(row.body, verifier, row.batch_id)
    except SealError as exc:
        return Preview(False, Localized(f"无法解封（{exc.reason}）：{exc}",
                                        f"{exc.reason}: {exc}"))
    reader = DocumentReader(plain, f"batch {row.batch_id}")
    first: list[tuple[str, dict[str, str]]] = []
    issues: list[str] = []
    for check in reader:
        if check.record is not None and len(first) < limit:
            first.append((check.element, dict(check.record.fields)))
        issues.extend(f"{i.element or ''}/{i.field or ''} {i.code}" for i in check.issues[:3])
    issues[:0] = [str(i.code) for i in reader.issues]
    head = dict(reader.head.fields) if reader.head else {}
    return Preview(True, None, head, reader.records, tuple(first), tuple(issues[:10]))
