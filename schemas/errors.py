"""The error hierarchy, grouped by what the caller should do about an error.

- ``ConfigError`` stops start-up: fix the configuration and start again.
- ``RetriableError``: a broker or a database is away; retry with backoff.
- ``RejectedRecord`` / ``RejectedBatch``: quarantine and report; never retry as is.
- ``FatalError``: everything else.

Third-party exceptions (pika, lxml, DB-API) are converted to these at the adapter
boundary with ``raise ... from exc``, so callers never catch driver exceptions.

``str(error)`` is English, for logs and JSON. An error an operator meets at the CLI may
also carry its Simplified Chinese text (``zh``), which ``message`` gives by default.
``located`` and ``wrapped`` build a ``ConfigError`` that names where it happened in both
languages; ``wrapped`` keeps the Chinese of the error it wraps.
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
    "located",
    "message_of",
    "wrapped",
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


def message_of(exc: BaseException, lang: str) -> str:
    """``exc.message(lang)`` for our own errors; any other exception speaks English only."""
    return exc.message(lang) if isinstance(exc, ExgateError) else str(exc)


def located(where: str, problem: str, problem_zh: str, *,
            where_zh: str | None = None) -> ConfigError:
    """``where: problem`` in English and ``where：problem_zh`` in Chinese.

    ``where`` (a file, ``[table] key``, an option) reads the same in both unless
    ``where_zh`` says otherwise.
    """
    return ConfigError(f"{where}: {problem}", zh=f"{where_zh or where}：{problem_zh}")


def wrapped(where: str, inner: BaseException, *, where_zh: str | None = None) -> ConfigError:
    """``inner`` with its context ``where`` in front; its Chinese survives the wrapping."""
    return located(where, str(inner), message_of(inner, "zh"), where_zh=where_zh)


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
