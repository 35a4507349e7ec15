"""What the agent tells people: its log messages and the summary ``agent once`` prints.

Chinese by default, English with ``lang="en"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from adapters.sources.base import Chunk
from frontend_machine.outbox import JournalResult
from schemas.messages import said
from schemas.refusals import REFUSAL_REASONS, node_step, reason_name

__all__ = ["SourceTally", "Tally", "level_name", "levels_named", "reason_said", "say",
           "status_name", "steps_said"]

_TEXT: dict[str, tuple[str, str]] = {
    "over-budget": (
        "发件箱已占用 {used} 字节，超过磁盘预算 {budget} 字节：暂停读取数据源；"
        "已发送的批次经各级确认入库后释放空间，随即自动恢复，未发送的数据不会丢弃",
        "the outbox uses {used} bytes, over its disk budget of {budget} bytes: reading of "
        "sources paused until the levels' receipts for sent batches free room; nothing "
        "unsent is dropped",
    ),
    "over-budget-held": (
        "发件箱已占用 {used} 字节，超过磁盘预算 {budget} 字节：暂停读取数据源。没有等待"
        "回执的批次可释放空间，空间由 {failed} 个失败批次和 {rejects} 条未处理的拒收记录"
        "占用；请重放失败批次（exgate agent replay）、更正并重放拒收，或调大 [outbox] "
        "disk_budget_mb；未发送的数据不会丢弃",
        "the outbox uses {used} bytes, over its disk budget of {budget} bytes: reading of "
        "sources paused. No batch awaits a receipt that would free room: {failed} failed "
        "batches and {rejects} open rejects hold it; replay the failed batches (exgate "
        "agent replay), correct and replay the rejects, or raise [outbox] disk_budget_mb; "
        "nothing unsent is dropped",
    ),
    "seal-failed": (
        "封装批次失败，记录仍保存在发件箱中，稍后重试：{error}",
        "sealing batches failed; the records stay in the outbox and sealing is retried: "
        "{error}",
    ),
    "final-seal-failed": (
        "最后一次封装批次失败：本次采集的记录已保存在发件箱中，数据源也已标记为已取，"
        "下次运行时封装发送：{error}",
        "the final sealing of batches failed: the records this run took are in the outbox "
        "and marked taken at their sources; the next run seals and sends them: {error}",
    ),
    "rejects-forgotten-early": (
        "发件箱超过磁盘预算：提前清除了 {rejects} 条已重放（已更正）的拒收记录",
        "the outbox is over its disk budget: {rejects} rejects already replayed "
        "(corrected) were forgotten early",
    ),
    "forgotten-early": (
        "发件箱超过磁盘预算：提前清除了 {batches} 个各级均已入库批次的记录标识；"
        "这些记录若被重新读取，会再次发送，并由各级作为重复记录丢弃",
        "the outbox is over its disk budget: the record identities of {batches} batches "
        "every level has stored were forgotten early; a record of theirs read again is sent "
        "again and dropped by the levels as a duplicate",
    ),
    "resumed": (
        "发件箱已低于磁盘预算，恢复读取数据源",
        "the outbox is under its budget again; reading resumed",
    ),
    "source-failed": (
        "数据源 {source} 读取失败，将在 {delay:.0f} 秒后重试：{error}",
        "source {source} failed, retrying in {delay:.0f} s: {error}",
    ),
    "config-error": ("配置错误：{error}", "configuration error: {error}"),
    "fatal": ("无法继续：{error}", "cannot continue: {error}"),
    "stopping": (
        "收到停止信号，处理完当前数据块后退出",
        "stop requested; exiting after the current chunk",
    ),
    "started": (
        "前置机代理已启动：节点 {node}，{sources} 个数据源，发件箱 {outbox}",
        "agent started: node {node}, {sources} source(s), outbox {outbox}",
    ),
    "stopped": ("前置机代理已停止", "agent stopped"),
    "rejected-chunk": (
        "数据源 {source} 发现 {count} 个问题（记录拒收或文件错误），例如 {first}",
        "source {source}: {count} problem(s) (rejected records or file errors), e.g. {first}",
    ),
    "summary-title": ("本次采集结果", "What this run took"),
    "summary-source": (
        "数据源 {source}：新增 {added} 条，重复 {duplicates} 条，冲突 {conflicts} 条，"
        "拒收 {rejected} 条",
        "source {source}: {added} added, {duplicates} duplicate, {conflicts} conflicting, "
        "{rejected} rejected",
    ),
    "summary-element": (
        "  {element}：新增 {added}，重复 {duplicates}，冲突 {conflicts}",
        "  {element}: {added} added, {duplicates} duplicate, {conflicts} conflicting",
    ),
    "summary-rejects": ("拒收明细：", "Rejected:"),
    "summary-more": ("  ……另有 {count} 条未列出", "  ... and {count} more"),
    "summary-error": ("数据源 {source} 出错：{error}", "source {source} failed: {error}"),
    "summary-outbox": (
        "发件箱：待发送批次 {pending}，未成批记录 {unbatched}，本次封装 {sealed} 个批次",
        "outbox: {pending} pending batch(es), {unbatched} unbatched record(s), "
        "{sealed} batch(es) sealed in this run",
    ),
    "summary-waiting": (
        "仍有 {count} 个文件未写完（大小或修改时间仍在变化），留待下次",
        "{count} file(s) still being written (size or mtime changing); left for the next run",
    ),
    "summary-no-broker": (
        "配置中没有 [broker]：批次只保存在发件箱中，不会发送",
        "no [broker] in the config: batches stay in the outbox and are never sent",
    ),
    "summary-paused": (
        "发件箱超过磁盘预算，本次未读完数据源",
        "the outbox is over its disk budget; sources were not read to the end",
    ),
    "upkeep-failed": (
        "发件箱整理失败，下次整理时重试：{error}",
        "outbox upkeep failed; the next upkeep tries again: {error}",
    ),
    # -- the publisher and its link (publisher.py, publishing.py, link.py) --
    "publisher-error": ("发布出错，稍后重试：{error}", "publisher error, retrying: {error}"),
    "flushed": ("已发送 {published} 个批次（均已获 RabbitMQ 确认），仍待发送 {pending} 个",
                "sent {published} batch(es), all confirmed by RabbitMQ; {pending} still pending"),
    "flush-stopped": ("本次运行在发送完之前结束，{pending} 个批次保留在发件箱中，下次运行时发送",
                      "the run ended before everything was sent; {pending} batch(es) stay in "
                      "the outbox for the next run"),
    "flush-waiting": ("本次运行将在 {seconds} 秒内继续尝试连接消息服务器；按 Ctrl-C 可提前结束，"
                      "批次保留在发件箱中，下次运行时发送",
                      "this run keeps trying the broker for up to {seconds} s more; Ctrl-C "
                      "ends it sooner, and the batches stay in the outbox for the next run"),
    "flush-left": ("消息服务器暂不可用，{pending} 个批次保留在发件箱中，下次运行时发送：{error}",
                   "the broker is unavailable; {pending} batch(es) stay in the outbox for the "
                   "next run: {error}"),
    "publisher-crashed": ("发布线程异常退出，5 秒后重启", "publisher crashed; restarting in 5 s"),
    "reconnected": (
        "已重新连接到消息服务器（此前连续失败 {failures} 次）",
        "connected to the broker again after {failures} failed attempt(s)",
    ),
    "broker-refused": (
        "消息服务器拒绝：{error}；{delay:.1f} 秒后重试",
        "broker refused: {error}; retrying in {delay:.1f} s",
    ),
    "login-refused": (
        "{error}。批次保留在发件箱中，{delay:.1f} 秒后再试；情况不变时此提示的间隔逐渐拉长",
        "{error}. Batches stay in the outbox; next try in {delay:.1f} s, and this message "
        "repeats ever less often while nothing changes",
    ),
    "login-reread": (
        "凭据文件已更换：改用其中的登录信息（用户 {user}）重试",
        "the credentials file was replaced: trying its login (user {user})",
    ),
    "login-not-reread": (
        "无法重新读取凭据文件，仍使用原登录信息重试：{error}",
        "the credentials file could not be read again; retrying with the old login: {error}",
    ),
    "broker-lost": (
        "{error}；批次保留在发件箱中，正在重新连接（{delay:.1f} 秒后再试）",
        "{error}; batches stay in the outbox, reconnecting (next try in {delay:.1f} s)",
    ),
    "batch-kept": (
        "{error}；批次仍待发送，{delay:.1f} 秒后重试",
        "{error}; kept pending, retrying in {delay:.1f} s",
    ),
    "batch-unbuildable": (
        "无法构建批次消息，批次已标记为失败：{error}",
        "batch cannot be built, marked failed: {error}",
    ),
    "receipts-refused": (
        "暂未能接收回执，稍后再次请求：{error}",
        "receipts not consumed, asked for again later: {error}",
    ),
    # -- receipts from the levels (receipts.py) --
    "receipt": (
        "收到{level}（{division}）的回执：{status}（入库 {stored} 条，重复 {duplicates} 条，"
        "冲突 {conflicts} 条）{reasons}；批次现为：{state}{steps}",
        "receipt from {level} {division}: {status} (stored {stored}, duplicates {duplicates}, "
        "conflicts {conflicts}){reasons}; batch now {state}{steps}",
    ),
    "receipt-reasons": ("，原因：{reasons}", " reasons: {reasons}"),
    "receipt-steps": ("；处理办法：{steps}", "; what to do: {steps}"),
    "receipt-late-failure": (
        "收到{level}（{division}）的回执：失败，但该级已入库该批次：该回执针对的是之后"
        "重发的另一份副本，或早于入库的旧回执，批次状态不变（现为：{state}）{reasons}",
        "receipt from {level} {division}: failed, for a batch that level has already "
        "stored: it is about a later copy, or older than the stored one, so the batch stays "
        "{state}{reasons}",
    ),
    "receipt-late-reasons": ("；原因：{reasons}", "; reasons: {reasons}"),
    "receipt-malformed": ("丢弃格式错误的回执：{error}", "dropping a malformed receipt: {error}"),
    "receipt-unknown": (
        "丢弃{level}的回执：本发件箱中没有该批次",
        "dropping a receipt from {level} for a batch this outbox does not hold",
    ),
    "receipt-held": (
        "回执暂未记录，留在消息服务器上稍后再记：{error}",
        "receipt not recorded yet, left on the broker: {error}",
    ),
}
_LEVEL_ZH = {"province": "省级", "city": "市级", "county": "县级"}
_STATUS_ZH = {"pending": "待发送", "sent": "已发送", "stored": "已入库", "failed": "失败"}


def say(message_id: str, lang: str = "zh", **args: object) -> str:
    return said(_TEXT, message_id, lang, **args)


def level_name(level: str, lang: str) -> str:
    """A level ("province", "city", "county") as the agent's language names it."""
    return level if lang == "en" else _LEVEL_ZH.get(level, level)


def status_name(status: str, lang: str) -> str:
    """A batch state or receipt status ("stored", "failed", ...) in the agent's language."""
    return status if lang == "en" else _STATUS_ZH.get(status, status)


def levels_named(levels: Iterable[str], lang: str) -> str:
    """Levels listed in the agent's language: "city, county" or "市级、县级"."""
    return (", " if lang == "en" else "、").join(level_name(level, lang) for level in levels)


def _parts(reason: str) -> tuple[str, str]:
    """A receipt's reason ("node-disabled: node … is disabled") as its code and detail;
    no code when it carries no "code: " prefix."""
    code, sep, detail = reason.partition(": ")
    return (code, detail) if sep else ("", reason)


def reason_said(reason: str, lang: str) -> str:
    """A level's reason for a ``failed`` receipt ("node-disabled: node … is disabled"):
    its code named in the agent's language, the gateway's detail (English technical
    facts: keys, digests, counts) kept as it came."""
    code, detail = _parts(reason)
    if code not in REFUSAL_REASONS:
        return reason
    name = reason_name(code)
    return f"{name.en}: {detail}" if lang == "en" else f"{name.zh}：{detail}"


def steps_said(reasons: Iterable[str], batch_id: str, lang: str) -> str:
    """What this node does about a level's refusal ``reasons`` of ``batch_id``
    (``schemas.refusals.node_step``), each step once, in the agent's language; "" when no
    reason's code is known."""
    steps: list[str] = []
    for reason in reasons:
        step = node_step(_parts(reason)[0], batch_id)
        if step is not None and step.pick(lang) not in steps:
            steps.append(step.pick(lang))
    return ("; " if lang == "en" else "；").join(steps)


@dataclass
class SourceTally:
    """Counts for one source, per element, and the first rejects in full."""

    added: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conflicts: int = 0
    conflicts_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected: int = 0
    reject_lines: list[str] = field(default_factory=list)
    issue_lines: int = 0  # every reject line produced; only max_listed of them are kept
    error: str | None = None


@dataclass
class Tally:
    """What a run took from every source; ``lines`` renders it for ``agent once``."""

    max_listed: int = 200
    sources: dict[str, SourceTally] = field(default_factory=dict)
    sealed: int = 0
    pending_batches: int = 0
    unbatched: int = 0
    paused: bool = False
    waiting: int = 0
    no_broker: bool = False    # no [broker]: batches are only journaled, never sent

    def source(self, name: str) -> SourceTally:
        return self.sources.setdefault(name, SourceTally())

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.sources.values())

    @property
    def failed(self) -> bool:
        return any(s.error for s in self.sources.values())

    def add(self, name: str, chunk: Chunk, result: JournalResult, lang: str) -> list[str]:
        """Count a journaled chunk; returns its reject lines (file:line element/field: msg)."""
        tally = self.source(name)
        for element, counts in result.by_element.items():
            tally.added[element] += counts["added"]
            tally.duplicates[element] += counts["duplicates"]
            tally.conflicts_by[element] += counts["conflicts"]
        tally.conflicts += result.conflicts
        lines = [_reject_line(origin.locator, issue.line or origin.line, issue.element
                              or check.element, issue.field, issue.message(lang))
                 for origin, check in chunk.checks if check.record is None
                 for issue in check.issues]
        lines += [_reject_line(issue.file or name, issue.line, issue.element, issue.field,
                               issue.message(lang)) for issue in chunk.file_issues]
        tally.rejected += result.rejected + len({i.file for i in chunk.file_issues})
        tally.issue_lines += len(lines)
        room = self.max_listed - len(tally.reject_lines)
        tally.reject_lines.extend(lines[:max(room, 0)])
        return lines

    def lines(self, lang: str) -> list[str]:
        out = [say("summary-title", lang)]
        for name, tally in self.sources.items():
            out.append(say("summary-source", lang, source=name, added=sum(tally.added.values()),
                           duplicates=sum(tally.duplicates.values()),
                           conflicts=tally.conflicts, rejected=tally.rejected))
            for element in sorted(set(tally.added) | set(tally.duplicates)):
                out.append(say("summary-element", lang, element=element,
                               added=tally.added.get(element, 0),
                               duplicates=tally.duplicates.get(element, 0),
                               conflicts=tally.conflicts_by.get(element, 0)))
            if tally.error:
                out.append(say("summary-error", lang, source=name, error=tally.error))
            if tally.reject_lines:
                out.append(say("summary-rejects", lang))
                out.extend(f"  {line}" for line in tally.reject_lines)
                hidden = tally.issue_lines - len(tally.reject_lines)
                if hidden > 0:
                    out.append(say("summary-more", lang, count=hidden))
        out.append(say("summary-outbox", lang, pending=self.pending_batches,
                       unbatched=self.unbatched, sealed=self.sealed))
        if self.waiting:
            out.append(say("summary-waiting", lang, count=self.waiting))
        if self.paused:
            out.append(say("summary-paused", lang))
        if self.no_broker and (self.pending_batches or self.unbatched):
            out.append(say("summary-no-broker", lang))
        return out


def _reject_line(locator: str, line: int | None, element: str | None, field_code: str | None,
                 message: str) -> str:
    where = f"{locator}:{line}" if line else locator
    what = "/".join(part for part in (element, field_code) if part)
    return f"{where} {what}: {message}" if what else f"{where}: {message}"
