"""The error hierarchy, grouped by what the caller should do about an error.

- ``ConfigError`` stops start-up: fix the configuration and start again.
- ``RetriableError``: a broker or a database is away; retry with backoff.
- ``RejectedRecord`` / ``RejectedBatch``: quarantine and report; never retry as is.
- ``FatalError``: everything else.

Third-party exceptions (pika, lxml, DB-API) are converted to these at the adapter
boundary with ``raise ... from exc``, so callers never catch driver exceptions.

``str(error)`` is English, for logs and JSON. An error an operator meets at the CLI may
also carry its Simplified Chinese text (``zh``), which ``message`` gives by default.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExgateError",
    "FatalError",
    "FileNotThere",
    "RejectedBatch",
    "RejectedRecord",
    "RetriableError",
]


class ExgateError(Exception):
    """Root of every error exgate raises on purpose."""

    def __init__(self, *args: object, zh: str | None = None) -> None:
        super().__init__(*args)
        self.zh = zh

    def message(self, lang: str) -> str:
        """The error in ``lang``: Chinese unless "en", where the raiser wrote it."""
        return self.zh if lang != "en" and self.zh else str(self)


class ConfigError(ExgateError):
    """Configuration or installation is wrong; start-up stops."""


class FileNotThere(ConfigError):
    """A file a command only reads is missing: most likely a mistyped path. Such a
    command never creates it, or it would report on a new, empty one as all clear."""

    def __init__(self, path: object, *, what: str, what_zh: str, key: str) -> None:
        super().__init__(f"{what} not found: {path} (check {key} in the config; this "
                         f"command never creates one)",
                         zh=f"未找到{what_zh}：{path}（请检查配置中的 {key}；"
                            f"此命令不会新建{what_zh}）")
        self.path = path


class RetriableError(ExgateError):
    """A dependency (broker, database, disk) is temporarily unavailable."""


class RejectedRecord(ExgateError):
    """One record failed validation; it is quarantined with its reasons."""

    def __init__(self, message: str, *, element: str | None = None, key: str | None = None):
        super().__init__(message)
        self.element = element
        self.key = key


class RejectedBatch(ExgateError):
    """A whole batch is refused (bad signature, unknown node, invalid payload)."""

    def __init__(self, message: str, *, batch_id: str | None = None, node_id: str | None = None):
        super().__init__(message)
        self.batch_id = batch_id
        self.node_id = node_id


class FatalError(ExgateError):
    """An error with no known remedy at run time."""
