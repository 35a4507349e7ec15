"""pika's own reports of a failed connection, kept out of the operators' logs.

While the broker is away, every connection attempt makes pika log seven ERROR lines and
a traceback. exgate maps the exception at the boundary (``errors.py``) and logs one line
per attempt with its backoff, so pika's lines add nothing, and an agent retrying all
night would fill journald with them and trip log alerts. pika's INFO lines ("connecting
to …") repeat per attempt too. Its other warnings and errors stay visible.
"""

from __future__ import annotations

import logging

__all__ = ["CONNECTION_LOGGERS", "quiet_pika"]

CONNECTION_LOGGERS = (
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.blocking_connection",
    "pika.adapters.base_connection",
)


def quiet_pika() -> None:
    """pika at WARNING, its connection set-up and tear-down at CRITICAL; idempotent."""
    logging.getLogger("pika").setLevel(logging.WARNING)
    for name in CONNECTION_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
