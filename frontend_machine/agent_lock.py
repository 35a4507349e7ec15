"""One agent per outbox: a second ``agent run`` or ``agent once`` on the same journal
stops before it reads any source.

Two agents on one outbox would both read the same tables and folders, both publish the
same batches, and overwrite each other's source progress with older positions. The
journal's identity would drop the duplicate records, but the second agent is still
a mistake an operator should hear about at once (a manual ``agent once`` beside the
systemd service, a copied config). The operators' commands (``replay``) keep opening
the outbox beside a running agent: WAL lets them.

The lock is ``flock`` on ``<outbox>.lock``. The kernel releases it when the process
ends, however it ends, so a ``kill -9`` leaves no stale lock behind to clear by hand.
The file keeps the holder's PID for the message only; it is never deleted, since
removing a file that another process is about to lock would let two agents hold two
different files.

Before the lock, root is refused an outbox that belongs to another user (the service's):
an ``agent once`` run by hand as root would leave a journal and a lock only root can
open, and the service would fail on them at its next start.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frontend_machine.outbox_connection import unopenable
from schemas.errors import ConfigError, FatalError

__all__ = [
    "AgentAlreadyRunning",
    "RootOnServiceOutbox",
    "lock_path",
    "refuse_root_on_a_service_outbox",
    "sole_agent",
]


class RootOnServiceOutbox(ConfigError):
    """root about to write into the outbox of the service's user."""

    def __init__(self, outbox: Path, owner: str) -> None:
        super().__init__(
            f"outbox {outbox} belongs to user {owner!r}: run the agent as that user (sudo -u"
            f" {owner} exgate agent …). Files root creates there (the outbox, its lock)"
            " would lock the service out",
            zh=f"发件箱 {outbox} 属于用户 {owner!r}：请以该用户身份运行代理（sudo -u {owner}"
               " exgate agent …）。以 root 身份在此创建的文件（发件箱及其锁文件）会使服务无法访问")


class AgentAlreadyRunning(FatalError):
    """Another agent process holds the outbox."""

    def __init__(self, outbox: Path, holder: str) -> None:
        super().__init__(
            f"another exgate agent (PID {holder}) is using outbox {outbox}: one outbox takes"
            " one agent. Stop that agent first (systemctl stop exgate-agent), or give this"
            " one its own [outbox] path",
            zh=f"另一个 exgate 代理（进程号 {holder}）正在使用发件箱 {outbox}：一个发件箱只能由"
               "一个代理使用。请先停止该代理（systemctl stop exgate-agent），或为本代理另配"
               " [outbox] path")


def refuse_root_on_a_service_outbox(outbox: Path) -> None:
    """Refuse root an outbox, or the folder it would be made in, owned by another user:
    an ``agent once`` run by hand as root left a root-owned journal and lock behind, and
    the service's own user could open neither."""
    if os.geteuid() != 0:
        return
    owned = next((p for p in (lock_path(outbox), outbox, *outbox.parents) if p.exists()), None)
    if owned is None:
        return
    uid = owned.stat().st_uid
    if uid != 0:
        raise RootOnServiceOutbox(outbox, _user_name(uid))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no name (a container's volume)
        return str(uid)


def lock_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + ".lock")


@contextmanager
def sole_agent(outbox: Path) -> Iterator[None]:
    """Hold ``outbox``'s agent lock for the ``with`` block; ``AgentAlreadyRunning`` when
    another process holds it. The outbox's folder is created if missing, as the agent
    creates its outbox there anyway."""
    path = lock_path(outbox)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # a folder the agent's user may not write
        raise unopenable(outbox, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise AgentAlreadyRunning(outbox, _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """The PID the holder wrote, or "?" while it has not written it yet."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "?"
