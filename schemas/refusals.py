"""What each refusal reason means to an operator, and what to do about it (zh / en).

A failed batch keeps a stable reason code (``bad-signature``, ``node-disabled``…) and
a detail sentence the pipeline wrote in English, with the technical facts (key
versions, digests, counts), and the node's receipt carries both. Every screen that
shows a refusal (the gateway's ``exgate status``, dashboard and ``exgate batches``; the
agent's receipt log and ``agent batches``) names the code with ``reason_name`` in the
reader's language, beside the detail, and says what to do with ``next_step``.
"""

from __future__ import annotations

from schemas.messages import Localized

__all__ = ["REFUSAL_REASONS", "next_step", "reason_name"]

_REPLAY = ("，然后用 exgate batches replay 重放", "; then replay it with exgate batches replay")
_CREDENTIALS = ("核对该节点的凭据文件是否为省中心下发的最新版本（exgate node list 可查密钥版本）",
                "check that the node's credentials file is the current one from the "
                "provincial centre (exgate node list shows its key versions)")
_RESEND = ("该副本无法使用：请节点重新发送（在前置机上运行 exgate agent replay 批次号）",
           "this copy cannot be used: have the node send it again (exgate agent replay "
           "BATCH_ID on its front-end machine)")
_FIX_DATA = ("请节点改正源数据后重新发送", "have the node correct its source data and send again")

# code → (zh reason, en reason, (zh next step, en next step))
REFUSAL_REASONS: dict[str, tuple[str, str, tuple[str, str]]] = {
    "unknown-node": ("节点未登记", "node not registered",
                     ("在登记簿中登记该节点（exgate node add）" + _REPLAY[0],
                      "register the node (exgate node add)" + _REPLAY[1])),
    "node-disabled": ("节点已停用", "node disabled",
                      ("如应恢复，启用该节点（exgate node enable）" + _REPLAY[0],
                       "if it should send, enable it (exgate node enable)" + _REPLAY[1])),
    "unknown-key-version": ("密钥版本未登记或已停用", "key version not registered or retired",
                            (_CREDENTIALS[0] + _REPLAY[0], _CREDENTIALS[1] + _REPLAY[1])),
    "user-mismatch": ("消息服务器用户与节点不符", "broker user is not the node's",
                      ("核对发送方：只有节点自己的消息服务器用户可发送其批次",
                       "check the sender: only the node's own broker user may send its "
                       "batches")),
    "routing-mismatch": ("路由键与节点不符", "routing key is not the node's",
                         ("核对节点的行政区划与登记簿是否一致", "check that the node's "
                          "division matches the registry")),
    "bad-signature": ("签名校验失败", "signature does not verify",
                      (_CREDENTIALS[0] + "；若凭据无误，该副本可能被伪造，请留存备查",
                       _CREDENTIALS[1] + "; if it is, the copy may be forged: keep it as "
                       "evidence")),
    "bad-ciphertext": ("密文无法解密", "ciphertext does not decrypt", _RESEND),
    "bad-format": ("报文封装格式错误", "not a sealed exgate body", _RESEND),
    "too-large": ("报文解压后超出上限", "payload too large once decompressed", _RESEND),
    "sha256-mismatch": ("内容摘要不符", "payload digest does not match", _RESEND),
    "missing-batch-id": ("缺少批次号", "no batch ID", _RESEND),
    "bad-batch-id": ("批次号不合规", "batch ID not acceptable", _RESEND),
    "invalid-payload": ("报文校验未通过", "payload does not validate", _FIX_DATA),
    "head-mismatch": ("报文头与消息属性不符", "HEAD differs from the message", _RESEND),
    "count-mismatch": ("记录数与消息属性不符", "record count differs from the message", _RESEND),
    "division-outside": ("记录的行政区划超出节点辖区", "records outside the node's division",
                         _FIX_DATA),
    "batch-id-reused": ("批次号被用于不同内容", "batch ID reused for other content",
                        ("核对节点的发件箱：同一批次号不应对应两份内容；请节点联系运维",
                         "check the node's outbox: one batch ID must never carry two "
                         "contents; have the node contact support")),
    "processing-error": ("网关处理出错", "the gateway could not process it",
                         ("查看网关日志中的错误并排除" + _REPLAY[0],
                          "look up the error in the gateway's log and fix it" + _REPLAY[1])),
    "dead-lettered": ("消息服务器多次投递未成功后放弃", "the broker gave up delivering it",
                      ("确认监察库与网关运行正常" + _REPLAY[0],
                       "check that the store and the gateway are running" + _REPLAY[1])),
}


def reason_name(code: str) -> Localized:
    """``code`` named in a few words, with the code itself: for lists and tables."""
    known = REFUSAL_REASONS.get(code)
    if known is None:
        return Localized(code, code)
    return Localized(f"{known[0]}（{code}）", f"{known[1]} ({code})")


def next_step(code: str) -> Localized | None:
    """What the operator does about a refusal for ``code`` (None: an unknown code)."""
    known = REFUSAL_REASONS.get(code)
    if known is None:
        return None
    zh_next, en_next = known[2]
    return Localized(zh_next, en_next[:1].upper() + en_next[1:])
