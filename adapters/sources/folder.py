"""The drop-folder source (design §5): ``inbox/ → processing/ → done/YYYY-MM-DD/ | error/``.

A periodic rescan of ``inbox/`` is the truth; watchdog events only wake the agent
early. A file is claimed (renamed into ``processing/``) once its size and mtime have
not changed for ``stable_seconds`` (an empty file: ``_EMPTY_SECONDS``) and still match
just before the rename, read in bounded chunks, and moved on only after its last chunk
is journaled. A crash leaves the file in ``processing/``; the next ``read``
resumes it first, skipping the records the outbox already holds (progress = file name,
sha256, records read and whether the file was done), and the outbox drops any duplicate
that slips through. Only an unfinished file is resumed: a file claimed from ``inbox/``,
or one whose saved progress says done, is read in full, since the same file may come
back (``agent replay --rejects``, an operator's copy) after it was read to the end.

One file the system refuses to move (a permission, a full disk) must not hold back
the others: it is logged, left where it is and tried again after ``_RETRY_SECONDS``
(or when it changes). Claimed names are bounded (``claimed_name``) so that a long
name, or a GBK name whose ``\\xNN`` spelling is four times longer, still fits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.sources.base import Chunk, Origin, SourceContext
from adapters.sources.folder_files import (
    claimed_name,
    free_path,
    is_candidate,
    read_small,
    utf8_name,
)
from adapters.sources.folder_ignored import PassedOver
from adapters.sources.folder_options import FolderOptions
from adapters.sources.folder_runs import COUNTING, FileRun, Group, unreadable_issue, write_report
from adapters.sources.folder_text import say
from schemas.audit_report import system_reason
from schemas.errors import ConfigError
from schemas.reader import DocumentReader
from schemas.record_check import RecordCheck
from schemas.times import BEIJING

__all__ = ["FolderSource", "folder_source"]

log = logging.getLogger("exgate.source.folder")

_RETRY_SECONDS = 600.0  # a file the system refused to move is tried again this much later
# An empty file is most often one its writer has just created and will fill: it is taken
# (to error/, as empty) only once it stayed empty this long, whatever stable_seconds says.
_EMPTY_SECONDS = 300.0

_Signature = tuple[int, int]  # (size, mtime in ns)

_Piece = tuple[list[tuple[Origin, RecordCheck]], dict[str, Any], "FileRun | None"]


class FolderSource:
    """Reads ``*.xml`` files dropped into ``<path>/inbox``."""

    def __init__(self, name: str, options: FolderOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context
        self.root = options.path
        _check_drop_folder(self.root)
        self.inbox, self.processing = self.root / "inbox", self.root / "processing"
        self.done, self.error = self.root / "done", self.root / "error"
        for folder in (self.inbox, self.processing, self.done, self.error):
            folder.mkdir(exist_ok=True)
        _check_one_file_system(self.root, (self.inbox, self.processing, self.done, self.error))
        self._sightings: dict[str, tuple[_Signature, float]] = {}
        self._passed_over = PassedOver(options.stable_seconds, context.lang, self._extra)
        self._scanned_at: float | None = None  # monotonic time of the last inbox scan
        self._yielded: Chunk | None = None
        self._finishing: list[FileRun] = []
        # Files the system refused to move, with the monotonic time of the next try:
        # inbox files (and their (size, mtime): a changed file is tried at once), and
        # journaled files in processing/ (finished later, never read again).
        self._refused: dict[Path, tuple[float, _Signature]] = {}
        self._unfinished: dict[Path, tuple[float, FileRun]] = {}
        self._observer: Any = None

    # -- Source protocol -----------------------------------------------------------------

    def read(self, state: Mapping[str, Any]) -> Iterator[Chunk]:
        """Resume files left in ``processing/``, then claim and read stable inbox files.

        Whole small files are grouped into one chunk (up to ``chunk_records`` records or
        ``files_per_chunk`` files); a big file is cut into chunks of its own.
        """
        self._retry_unfinished()
        group = Group()
        for path, resumed in self._files_to_read():
            for checks, progress, run in self._read_file(path, state if resumed else {}):
                if run is None:  # a big file's middle: flush the group, then send it alone
                    yield from self._flush(group)
                    yield self._hand_out(Chunk(tuple(checks), progress), [])
                    continue
                group.add(checks, progress, run)
                if (len(group.checks) >= self.options.chunk_records
                        or len(group.runs) >= self.options.files_per_chunk):
                    yield from self._flush(group)
        yield from self._flush(group)

    def commit(self, chunk: Chunk) -> None:
        """After a chunk is journaled, move the files it completed to done/ or error/."""
        if chunk is not self._yielded:
            return  # not ours, or committed already: commit is idempotent
        self._yielded = None
        runs, self._finishing = self._finishing, []
        for run in runs:
            if run.path.exists():
                self._finish_or_hold(run)

    def _files_to_read(self) -> Iterator[tuple[Path, bool]]:
        """Each file to read, and whether it was left in ``processing/`` (resumable)."""
        for path in sorted(self.processing.glob("*")):
            if is_candidate(path.name) and not path.is_symlink() and path.is_file() \
                    and path not in self._unfinished:
                log.info(self._say("resuming"), extra=self._extra(path.name))
                yield path, True
        for path, signature in self._stable_inbox_files():
            claimed = self._claim(path, signature)
            if claimed is not None:
                yield claimed, False

    def _retry_unfinished(self) -> None:
        now = time.monotonic()
        for path, (until, run) in list(self._unfinished.items()):
            if until <= now:
                del self._unfinished[path]
                if path.exists():
                    self._finish_or_hold(run)

    def _finish_or_hold(self, run: FileRun) -> None:
        """Finish a journaled file; if the system refuses, keep it to finish later.

        Its records are journaled, so it is not read again while this source runs;
        after a restart it is resumed from ``processing/`` and the outbox drops what
        it holds already.
        """
        try:
            self._finish(run)
        except OSError as exc:
            until = self._hold(run.path, exc, "not-finished")
            self._unfinished[run.path] = (until, run)

    def _flush(self, group: Group) -> Iterator[Chunk]:
        if group.runs:
            chunk = Chunk(tuple(group.checks), group.progress, tuple(group.file_issues))
            runs = list(group.runs)
            group.clear()
            yield self._hand_out(chunk, runs)

    def _hand_out(self, chunk: Chunk, runs: list[FileRun]) -> Chunk:
        self._yielded, self._finishing = chunk, runs
        return chunk

    def _hold(self, path: Path, exc: OSError, what: str) -> float:
        """Log why ``path`` is left where it is (``what``: a text ID); returns when to try
        it again."""
        advice = self._say("hold-advice", minutes=round(_RETRY_SECONDS / 60))
        log.warning(self._say("held", what=self._say(what), path=utf8_name(str(path)),
                              error=system_reason(exc, self.context.lang), advice=advice),
                    extra=self._extra(utf8_name(path.name)))
        return time.monotonic() + _RETRY_SECONDS

    def _say(self, message_id: str, **args: object) -> str:
        return say(message_id, self.context.lang, **args)

    def _finish(self, run: FileRun) -> None:
        if run.bad:
            target = free_path(self.error, run.name)
            write_report(run, target, source=self.name, node=self.context.node_id,
                         lang=self.context.lang)
        else:
            day = self.done / datetime.now(BEIJING).strftime("%Y-%m-%d")
            day.mkdir(exist_ok=True)
            target = free_path(day, run.name)
        os.rename(run.path, target)
        log.info(self._say("moved", folder="error" if run.bad else "done"),
                 extra=self._extra(run.name))

    # -- optional abilities used by the agent -----------------------------------------------

    def waiting(self) -> int:
        """Inbox files seen but not yet stable (``once`` waits for them)."""
        return sum(1 for name in self._sightings if (self.inbox / name).exists())

    def wait_hint(self) -> float | None:
        """Seconds until the next rescan is due, or sooner until the next unstable file
        could be taken: the agent polls at least this often (and every ``poll_seconds``)."""
        now = time.monotonic()
        due = [self.options.rescan_seconds - (now - self._scanned_at)
               if self._scanned_at is not None else 0.0]
        due += [self._settle_seconds(signature) - (now - since)
                for signature, since in self._sightings.values()]
        return max(0.0, min(due))

    def watch(self, wake: Callable[[], None]) -> None:
        """Start the watchdog observer; its events only call ``wake``."""
        if self.options.observer == "none" or self._observer is not None:
            return
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        class _Hint(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wake()

        if self.options.observer == "polling":
            from watchdog.observers.polling import PollingObserver
            observer: Any = PollingObserver(timeout=min(self.options.rescan_seconds, 2.0))
        else:
            from watchdog.observers import Observer
            observer = Observer()
        observer.schedule(_Hint(), str(self.inbox), recursive=False)
        try:
            observer.start()
        except OSError as exc:  # inotify's limits reached, say: the rescans still find all
            log.warning(self._say("no-observer", error=system_reason(exc, self.context.lang),
                                  seconds=self.options.rescan_seconds),
                        extra={"node": self.context.node_id, "source": self.name})
            return
        self._observer = observer

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

    # -- discovery and claiming -------------------------------------------------------------

    def _stable_inbox_files(self) -> list[tuple[Path, _Signature]]:
        """Files whose (size, mtime) held still for ``stable_seconds`` (an empty one for
        ``_EMPTY_SECONDS``), oldest first, with that signature."""
        now = self._scanned_at = time.monotonic()
        sightings: dict[str, tuple[_Signature, float]] = {}
        ready: list[tuple[int, str, _Signature]] = []
        passed_over: list[os.DirEntry[str]] = []  # said once each (folder_ignored)
        seen: set[str] = set()
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if not is_candidate(entry.name) or not entry.is_file(follow_symlinks=False):
                    passed_over.append(entry)
                    continue
                seen.add(entry.name)
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                signature = (stat.st_size, stat.st_mtime_ns)
                if self._is_refused(self.inbox / entry.name, signature):
                    continue
                previous = self._sightings.get(entry.name)
                since = previous[1] if previous and previous[0] == signature else now
                if now - since >= self._settle_seconds(signature):
                    ready.append((stat.st_mtime_ns, entry.name, signature))
                else:
                    sightings[entry.name] = (signature, since)
        self._sightings = sightings
        self._passed_over.review(passed_over, now)
        # Listed, not stat'ed again: a file the system cannot look at must not fail the scan.
        self._refused = {p: v for p, v in self._refused.items() if p.name in seen}
        return [(self.inbox / name, signature) for _, name, signature in sorted(ready)]

    def _settle_seconds(self, signature: _Signature) -> float:
        if signature[0] == 0:
            return max(self.options.stable_seconds, _EMPTY_SECONDS)
        return self.options.stable_seconds

    def _is_refused(self, path: Path, signature: _Signature) -> bool:
        """A refused inbox file waits out its delay, unless it changed (a fixed copy)."""
        refused = self._refused.get(path)
        if refused is None:
            return False
        if time.monotonic() < refused[0] and refused[1] == signature:
            return True
        del self._refused[path]
        return False

    def _claim(self, path: Path, signature: _Signature) -> Path | None:
        """Rename a stable file into ``processing/``, unless it changed since the scan.

        The scan may lie minutes back (the files before it were read and journaled
        meanwhile), and a writer rewriting the file in place since would have it
        claimed half-written: a changed file is watched again from now.
        """
        try:
            stat = path.lstat()
        except FileNotFoundError:
            return None  # gone (taken by an operator, or a second agent)
        except OSError as exc:
            self._refuse(path, exc, signature)
            return None
        now_signature = (stat.st_size, stat.st_mtime_ns)
        if now_signature != signature:
            self._sightings[path.name] = (now_signature, time.monotonic())
            return None
        name = claimed_name(path.name)
        if name != path.name:
            log.warning(self._say("renamed", name=name), extra=self._extra(utf8_name(path.name)))
        # A name error/ does not hold either: the file's records and rejects go by it, so
        # the day's daily.xml is not taken for the bad one of yesterday waiting there.
        target = free_path(self.processing, name, also=(self.error,))
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None  # gone (taken by an operator, or a second agent)
        except OSError as exc:
            self._refuse(path, exc, signature)
            return None
        return target

    def _refuse(self, path: Path, exc: OSError, signature: _Signature) -> None:
        """Hold a file the system would not claim, as the scan saw it (``signature``): a
        file that cannot even be looked at is said too, not passed over in silence."""
        self._refused[path] = (self._hold(path, exc, "not-claimed"), signature)

    # -- reading one file ---------------------------------------------------------------

    def _read_file(self, path: Path, state: Mapping[str, Any]) -> Iterator[_Piece]:
        """A file's checks in pieces; the last piece carries its ``FileRun``."""
        try:
            # Past max_file_mb the reader refuses the file by its size: never read it.
            too_large = path.lstat().st_size > self.options.limits.max_file_bytes
            content, digest = (None, "") if too_large else read_small(path)
        except OSError as exc:
            run = FileRun(path.name, path, "",
                          file_issues=(unreadable_issue(path.name, exc.strerror or str(exc)),))
            yield [], run.progress(done=True), run
            return
        run = FileRun(path.name, path, digest)
        # Progress that says done may be of an earlier pass over this very file, before
        # it was moved out and back (or claimed again and the agent killed before its
        # first chunk): skipping would lose it whole. Re-reading a file that was journaled
        # but not yet moved costs only duplicates the outbox drops.
        resume = (state.get("file") == run.name and state.get("sha256") == digest
                  and state.get("done") is False and state.get("counting") == COUNTING)
        skip = int(state.get("records", 0)) if resume else 0
        reader = DocumentReader(path if content is None else content, run.name,
                                limits=self.options.limits,
                                node_division=self.context.node_division)
        buffer: list[tuple[Origin, RecordCheck]] = []
        try:
            for check in reader:
                run.records += 1
                if not check.valid:
                    run.note_invalid(check, self.options.max_report_issues)
                if run.records <= skip:
                    continue  # journaled before a restart, with its reject if any
                buffer.append((Origin(self.name, run.name, check.line), check))
                if len(buffer) >= self.options.chunk_records:
                    yield buffer, run.progress(done=False), None
                    buffer = []
        except OSError as exc:
            log.warning(self._say("read-error", error=system_reason(exc, self.context.lang)),
                        extra=self._extra(run.name))
            reader.issues.append(unreadable_issue(run.name, exc.strerror or str(exc)))
        except Exception as exc:  # a reader defect: this file goes to error/, not the rest
            log.exception(self._say("reader-failed", error=exc), extra=self._extra(run.name))
            reader.issues.append(unreadable_issue(run.name, f"{type(exc).__name__}: {exc}"))
        run.file_issues = tuple(reader.issues)
        yield buffer, run.progress(done=True), run

    def _extra(self, file: str) -> dict[str, str]:
        return {"node": self.context.node_id, "source": self.name, "file": file}


def folder_source(name: str, options: Mapping[str, Any], context: SourceContext) -> FolderSource:
    """The ``SourceFactory`` for ``kind = "folder"``."""
    return FolderSource(name, FolderOptions.parse(options), context)


def _check_one_file_system(root: Path, folders: tuple[Path, ...]) -> None:
    """Files are claimed and filed by renaming them between the four subfolders, which
    no system does across file systems (EXDEV): a share mounted on inbox/ alone would
    have every file held for ever."""
    devices = {folder: folder.stat().st_dev for folder in folders}
    first = folders[0]
    apart = [folder for folder in folders if devices[folder] != devices[first]]
    if apart:
        raise ConfigError(
            f"key 'path': {first} and {apart[0]} lie on different file systems (a share "
            f"mounted on {first.name}/ alone, say), and files are moved between them by "
            f"renaming; mount the share on {root} itself, so that its inbox/, processing/, "
            "done/ and error/ share one file system",
            zh=f"配置项 'path'：{first} 与 {apart[0]} 位于不同的文件系统（例如只把共享挂载在 "
               f"{first.name}/ 上），而文件在它们之间以改名方式移动；请将共享挂载到 {root} 本身，"
               "使 inbox/、processing/、done/ 和 error/ 位于同一文件系统")


def _check_drop_folder(root: Path) -> None:
    """``path`` must name a folder that exists: the legacy system writes into it, so a
    missing one is a mistyped ``path`` (or a share not mounted), never one to create and
    then watch, empty, forever. Its four subfolders are made when missing."""
    if root.is_dir():
        return
    if root.exists():
        raise ConfigError(f"key 'path': {root} is not a folder; correct 'path' to name the "
                          "drop folder the legacy system writes into",
                          zh=f"配置项 'path'：{root} 不是目录；请将 'path' 改为源系统写入文件的"
                          "投递目录")
    raise ConfigError(f"key 'path': the drop folder {root} does not exist; create it (and "
                      "have the legacy system write into its inbox/) or correct 'path'",
                      zh=f"配置项 'path'：投递目录 {root} 不存在；请创建该目录（并让源系统将文件"
                      "写入其下的 inbox/），或改正 'path'")
