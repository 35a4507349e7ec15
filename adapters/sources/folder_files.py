"""The drop folder's files on disk, for the folder source: their names and their bytes.

Which names are taken (``is_candidate``), the UTF-8 name of bounded length a file is
claimed under (``claimed_name``), a target path that never overwrites (``free_path``),
and a file's sha256 with its bytes when it is small enough to parse from memory
(``read_small``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = ["NAME_BYTES", "REPORT_SUFFIX", "claimed_name", "free_path", "is_candidate",
           "is_scratch", "read_small", "utf8_name"]

REPORT_SUFFIX = ".error.json"
_IN_MEMORY_BYTES = 4 << 20  # files up to this size are read once, into memory
# NAME_MAX is 255 bytes on every usual file system; the rest is room for free_path's
# "-N", the report's ".error.json" and its temp name's "." and ".tmp".
NAME_BYTES = 200
_CUT_ESCAPE = re.compile(r"\\(x[0-9a-f]?)?$")  # a \xNN spelling cut short at the end


def is_candidate(name: str) -> bool:
    """Only ``*.xml``: writers write a temp name (``.part``, dot-files) and rename it in."""
    return name.lower().endswith(".xml") and not is_scratch(name)


def is_scratch(name: str) -> bool:
    """A name writers and office suites use for their own scratch files: dot-files (temp
    names, ``.DS_Store``) and ``~$name``, the owner file Office and WPS keep beside a
    document a clerk has open."""
    return name.startswith((".", "~$"))


def utf8_name(name: str) -> str:
    """``name`` with bytes that are not UTF-8 spelled ``\\xNN``.

    A legacy writer may name a file in GBK; the journal, the reports and the outbox
    store names as UTF-8 text, and such a name would fail every chunk it is in.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def claimed_name(name: str) -> str:
    """The name a file is claimed under: UTF-8 (``utf8_name``), at most ``NAME_BYTES``.

    A longer name keeps its suffix and as much of its stem as fits, tagged with a hash
    of the original bytes so that two long names sharing a start stay apart.
    """
    text = utf8_name(name)
    if len(text.encode()) <= NAME_BYTES:
        return text
    stem, suffix = os.path.splitext(text)
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    room = NAME_BYTES - len((tag + suffix).encode())
    kept = stem.encode()[:room].decode("utf-8", "ignore")
    return _CUT_ESCAPE.sub("", kept) + tag + suffix


def free_path(folder: Path, name: str, also: Sequence[Path] = ()) -> Path:
    """``folder/name``, or ``folder/stem-N.suffix`` when that is taken (never overwrite),
    taken in none of the folders ``also`` either."""
    stem, suffix = os.path.splitext(name)
    number = 0
    while any((where / name).exists() for where in (folder, *also)):
        number += 1
        name = f"{stem}-{number}{suffix}"
    return folder / name


def _regular_file(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file, never through a symlink.

    A writer sharing the drop folder could otherwise swap a dropped file for a link to
    one only the agent may read (its key file) between the scan and the claim; what the
    agent reads may end up in a report or, if it parses, in the node's records.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, not a file: not followed") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, device or folder)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small(path: Path) -> tuple[bytes | None, str]:
    """The file's sha256, and its bytes when it is small enough to parse from memory.

    A small file (the usual drop) is read from disk once: hashed and handed to the
    parser as bytes. A bigger one is hashed here, in blocks, and parsed as a stream.
    The hash has to be known before parsing, since every chunk's progress carries it.
    """
    digest = hashlib.sha256()
    with _regular_file(path) as handle:
        head = handle.read(_IN_MEMORY_BYTES + 1)
        digest.update(head)
        if len(head) <= _IN_MEMORY_BYTES:
            return head, digest.hexdigest()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return None, digest.hexdigest()
