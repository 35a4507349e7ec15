"""What the gateway writes to its log, in Simplified Chinese by default, English with
``[gateway] lang = "en"``: the one table of its log lines.

``gateway run`` and what runs inside it (consumer, workers, pipeline, dead letters,
housekeeping, dashboard, metrics), ``batches replay`` and the broker set-up commands
(``mgmt_api``, ``federation``) read their lines here with ``say``. Identifiers (batch and
node IDs, queue names, routing keys, redacted URLs) go into the lines as they are. An
error argument is said with ``message_of`` and a ``Localized`` one in the line's language,
so a Chinese line carries the Chinese of an error that has one.
"""

from __future__ import annotations

from schemas.errors import message_of
from schemas.messages import Localized, said

__all__ = ["both", "say"]

_TEXT: dict[str, tuple[str, str]] = {
    # -- gateway run: start-up (run.py) --
    "no-dashboard": (
        "{error}；继续消费，但不提供看板（是否有本级 {division} 的另一个网关进程在提供看板？）",
        "{error}; consuming without a dashboard (is another gateway process of level "
        "{division} serving it?)",
    ),
    "store-not-ready": ("监察库 {store} 尚不可用：{error}", "store {store} not ready: {error}"),
    # -- the consumer (consumer.py) --
    "reconnecting": ("{error}；{delay:.1f} 秒后重新连接", "{error}; reconnecting in {delay:.1f} s"),
    "consuming": (
        "开始消费队列 {queue}：工作线程 {workers} 个，预取 {prefetch} 条",
        "consuming {queue} with {workers} workers, prefetch {prefetch}",
    ),
    "queues-as-found": (
        "{refusal}；按现有参数消费本级队列。{effect}队列参数无法修改：如需采用本版本的参数，"
        "请在 {queue} 为空时重建该队列",
        "{refusal}; consuming the level's queues as they are.{effect} A queue's arguments "
        "cannot change: re-create {queue} while it is empty to take this version's",
    ),
    "older-routing-key": (
        "该队列的死信将保留原路由键，并且也会进入本消息服务器上各上级的死信队列。",
        " Its dead letters then keep their routing key and also reach the dead queues of "
        "the levels above on this broker.",
    ),
    "older-delivery-limit": (
        "消息服务器会在批次退回队列不到 {limit:,} 次时就放弃该批次（监察库中断几小时即可能"
        "出现，而非几周）；这些批次将保存为失败批次，请在监察库恢复后重放。",
        " The broker then gives up on a batch returned fewer times than {limit:,} (a store "
        "outage of hours, not weeks); such batches are kept as failed batches: replay them "
        "once the store is back.",
    ),
    "drained": (
        "队列 {queue} 已连续 {seconds:.1f} 秒为空：排空完成",
        "queue {queue} stayed empty for {seconds:.1f} s: drained",
    ),
    "redelivered": (
        "批次 {batch} 被重新投递（x-delivery-count {count}）",
        "batch {batch} redelivered (x-delivery-count {count})",
    ),
    "receipt-not-sent": (
        "批次 {batch} 的回执未能发送给节点 {node}：{error}",
        "receipt for batch {batch} not sent to node {node}: {error}",
    ),
    # what the consumer was doing when the broker failed (in the error it logs)
    "doing-connect": ("连接消息服务器", "connecting to the broker"),
    "doing-consume": ("消费 {queue}", "consuming {queue}"),
    "doing-declare": ("声明并消费 {queue}", "declaring and consuming {queue}"),
    "doing-receipt": ("发送回执", "publishing the receipt"),
    # -- a worker (worker.py) --
    "batch-subject": ("节点 {node} 的批次 {batch}", "batch {batch} from node {node}"),
    "heartbeat-subject": ("节点 {node} 的心跳", "heartbeat of node {node}"),
    "settle-batch": ("保存为失败批次", "kept as failed"),
    "settle-heartbeat": ("丢弃", "dropped"),
    "went-through": (
        "{subject}：失败 {failures} 次后处理成功",
        "{subject} went through after {failures} failed attempt(s)",
    ),
    "held": (
        "{subject}：第 {failures} 次处理失败，暂存重试：{error}",
        "{subject} held, attempt {failures}: {error}",
    ),
    "held-unexpected": (
        "{subject}：发生意外错误，暂存重试",
        "{subject} held after an unexpected error",
    ),
    "poison-cause": (
        "连续失败 {attempts} 次（最后一次错误：{error}）",
        "failed {attempts} times in a row, last with {error}",
    ),
    "cannot-settle": (
        "{subject}：{cause}，但无法{settled}，继续暂存：{error}",
        "{subject} {cause}, but cannot be {settled}, still held: {error}",
    ),
    "heartbeat-dropped": (
        "路由键 {key} 的心跳{cause}：已丢弃",
        "heartbeat on {key} {cause}: dropped",
    ),
    # -- the pipeline (pipeline.py) --
    "kept-failed": (
        "节点 {node} 的批次 {batch} {cause}，已保存为失败批次（原因：{reason_name}），"
        "排除故障后可重放",
        "batch {batch} from node {node} {cause}: kept as a failed batch ({reason}), to replay "
        "once the cause is fixed",
    ),
    "stored-after-write": (
        "批次 {batch} 已入库；失败发生在写入之后：{cause}",
        "batch {batch} is stored; what fails is after the write: {cause}",
    ),
    "heartbeat-not-json": (
        "已丢弃一条不符合约定 JSON 格式的心跳（路由键 {key}）",
        "dropped a heartbeat that is not the JSON the contract says (routing key {key})",
    ),
    "heartbeat-not-authentic": (
        "已丢弃一条自称来自节点 {node} 的心跳：该节点未登记，或消息服务器用户 {user!r}、"
        "路由键 {key!r} 与其登记不符",
        "dropped a heartbeat claiming node {node} from broker user {user!r} with routing "
        "key {key!r}: the node is not registered, or these are not its own",
    ),
    "stored": (
        "节点 {node} 的批次 {batch} 已入库：新入库 {stored} 条，重复 {duplicates} 条，"
        "冲突 {conflicts} 条{again}",
        "stored batch {batch} from node {node}: {stored} stored, {duplicates} duplicates, "
        "{conflicts} conflicts{again}",
    ),
    "stored-again": ("（重新投递，内容未变）", " (redelivered, unchanged)"),
    "conflicts": (
        "节点 {node} 的批次 {batch} 有 {count} 条冲突记录：{reasons}",
        "batch {batch} from node {node} has {count} conflict(s): {reasons}",
    ),
    "refused": (
        "拒收节点 {node} 的批次 {batch}：{reason_name}：{detail}",
        "refused batch {batch} from node {node}: {reason}: {detail}",
    ),
    # -- dead letters (dead_letters.py) --
    "dead-letter-stored": (
        "批次 {batch} 的死信：该批次已在本级入库，已确认（ack）",
        "dead letter of batch {batch}: the batch is stored at this level; acked",
    ),
    "dead-letters-left": (
        "死信队列 {queue} 中仍有 {waiting} 条消息：其中 {strangers} 条不是在 {died_in} 中成为"
        "死信的，不归本级保存（请在管理界面中查看）；其余等待监察库恢复，之后的处理轮次会将其"
        "保存为失败批次",
        "{waiting} message(s) left in the dead queue {queue}: {strangers} did not die in "
        "{died_in}, so are not this level's to keep (look at them in the management UI); "
        "the others wait for the store, and a later pass keeps them as failed batches",
    ),
    "dead-pass-stopped": (
        "死信队列 {queue}：本轮处理中止，死信仍留在队列中：{error}",
        "dead queue {queue}: pass stopped, its letters stay there: {error}",
    ),
    "dead-letter-stays": (
        "批次 {batch} 的死信仍留在 {queue} 中，暂未保存为失败批次：{error}",
        "dead letter of batch {batch} stays in {queue}, not kept as a failed batch yet: "
        "{error}",
    ),
    "dead-lettered": (
        "{at}被消息服务器从 {queue} 转入死信（{reason}{why}{times}）",
        "was dead-lettered by the broker from {queue}{at} ({reason}{why}{times})",
    ),
    "dead-at": ("于 {at} ", " at {at}"),
    "dead-times": ("，共 {count} 次", ", {count} time{plural}"),
    "why-delivery_limit": (
        "：重新入队次数超过投递上限",
        ": returned to the queue more often than its delivery limit allows",
    ),
    "why-rejected": ("：被拒绝且未重新入队", ": rejected without requeue"),
    "why-expired": ("：在队列中过期", ": expired in the queue"),
    "why-maxlen": ("：队列超出长度上限而被移出", ": dropped from a queue over its length limit"),
    # -- housekeeping (housekeeping.py) --
    "heartbeats-not-deleted": (
        "未能删除超过 {days:g} 天的心跳，{every:.0f} 秒后重试：{error}",
        "heartbeats older than {days:g} day(s) not deleted, trying again in {every:.0f} s: "
        "{error}",
    ),
    "heartbeats-deleted": (
        "已删除 {count} 条超过 {days:g} 天的心跳",
        "deleted {count} heartbeat(s) older than {days:g} day(s)",
    ),
    # -- the dashboard and /metrics (dashboard/server.py, metrics.py) --
    "dashboard-on": ("看板已启动：{url}", "dashboard on {url}"),
    "dashboard-unanswered": ("看板 {path}：{error}", "dashboard {path}: {error}"),
    "dashboard-failed": ("看板 {path} 出错", "dashboard {path} failed"),
    "healthz-failed": ("健康检查（/healthz）：{error}", "healthz: {error}"),
    "metrics-failed": ("指标（/metrics）：{error}", "metrics: {error}"),
    # -- batches replay (replay.py) --
    "replay-still-fails": (
        "批次 {batch} 重放仍然失败：{error}",
        "replay of batch {batch} still fails: {error}",
    ),
    # -- the broker's set-up through its management API (mgmt_api.py, federation.py) --
    "queue-kept": (
        "{reason}；保留该队列现状（队列参数无法修改：如需采用本版本的参数，请在队列为空时重建）",
        "{reason}; keeping the queue as it is (a queue's arguments cannot change: re-create "
        "it while it is empty to take this version's)",
    ),
    "old-upstream": (
        "旧上游集合 {set} 中的上游 {upstream!r} 未指明行政区划；其链路将随旧策略一并停止："
        "请用 exgate broker link 重新声明",
        "upstream {upstream!r} of the old set {set} names no division; its link stops with "
        "the old policy: declare it again with exgate broker link",
    ),
}


def say(text_id: str, lang: str, **args: object) -> str:
    """The log line ``text_id`` in ``lang``; an exception or ``Localized`` argument is
    said in ``lang`` too."""
    return said(_TEXT, text_id, lang, **{
        name: message_of(value, lang) if isinstance(value, BaseException) else value
        for name, value in args.items()})


def both(text_id: str, **args: object) -> Localized:
    """``text_id`` in both languages: a part of a line, or what a store keeps (English)."""
    return Localized(say(text_id, "zh", **args), say(text_id, "en", **args))
