"""What the drop folder's ``inbox/`` holds that the source does not take, said once.

Only regular ``*.xml`` files directly in ``inbox/`` are read (``is_candidate``, any case
of ``.xml``). A clerk who drops ``cases.xml.txt``, a folder of files or a shortcut would
otherwise wait forever for files that are never read: each such entry is logged once,
naming it and why, when it has settled (unchanged for ``stable_seconds``, or last changed
that long ago), so a writer's temp name renamed into place a moment later is not
reported. An entry is remembered while it stays; one that disappears is forgotten, so a
new one of the same name is reported again, as is one that turns into another kind.
Writers' and office suites' scratch files are passed over in silence (``is_scratch``:
dot-files, ``~$`` owner files). A scan names at most ``WARNINGS_PER_SCAN`` entries and
counts the rest in one line.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from adapters.sources.folder_files import is_scratch, utf8_name
from adapters.sources.folder_text import say

__all__ = ["WARNINGS_PER_SCAN", "PassedOver"]

log = logging.getLogger("exgate.source.folder")

# Entries named one by one in a scan; the rest are counted in one line (a share holding
# thousands of stray files would otherwise flood the log once).
WARNINGS_PER_SCAN = 20

_Signature = tuple[int, int]   # (size, mtime in ns)


@dataclass
class _Seen:
    kind: str
    signature: _Signature
    since: float           # monotonic time the signature was first seen
    reported: bool = False


class PassedOver:
    """The entries of ``inbox/`` a scan did not take, each logged once (a warning in
    ``lang``, with the source's ``extra`` fields for the entry) while it stays."""

    def __init__(self, stable_seconds: float, lang: str,
                 extra: Callable[[str], dict[str, str]]) -> None:
        self.stable_seconds = stable_seconds
        self.lang = lang
        self._extra = extra
        self._seen: dict[str, _Seen] = {}

    def review(self, entries: Iterable[os.DirEntry[str]], now: float) -> None:
        """One scan's entries not taken (``now``: its monotonic time); the entries of
        earlier scans not among them are gone and forgotten."""
        seen: dict[str, _Seen] = {}
        warned = unsaid = 0
        for entry in entries:
            if is_scratch(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # gone, or a share refusing it: never costs the scan its files
                continue
            kind, signature = _kind(info), (info.st_size, info.st_mtime_ns)
            before = self._seen.get(entry.name)
            if before is None or (before.kind, before.signature) != (kind, signature):
                # New, or changed: a changed entry is waited for again, and reported again
                # only if it became another kind.
                reported = before is not None and before.reported and before.kind == kind
                before = _Seen(kind, signature, now, reported)
            if not before.reported and self._settled(before, info, now):
                if warned < WARNINGS_PER_SCAN:
                    self._warn(utf8_name(entry.name), kind)
                    warned += 1
                else:
                    unsaid += 1
                before.reported = True
            seen[entry.name] = before
        self._seen = seen
        if unsaid:
            log.warning(say("not-taken-more", self.lang, count=unsaid))

    def _warn(self, name: str, kind: str) -> None:
        shown = f"{name}/" if kind == "folder" else name
        log.warning(say("not-taken", self.lang, name=shown,
                        why=say(f"not-taken-{kind}", self.lang)), extra=self._extra(name))

    def _settled(self, seen: _Seen, info: os.stat_result, now: float) -> bool:
        """Unchanged for ``stable_seconds`` since first seen, or last changed that long
        ago by the wall clock (``agent once`` sees the inbox only once or twice)."""
        return (now - seen.since >= self.stable_seconds
                or time.time() - info.st_mtime >= self.stable_seconds)


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISREG(mode):
        return "not-xml"
    return "special"
