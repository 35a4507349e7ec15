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

__all__ = ["NODE_STEPS", "REFUSAL_REASONS", "next_step", "node_step", "reason_name"]

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


# What the node's own staff do about a refusal (the agent's receipt log): the steps above
# are the level operator's, with commands only a gateway's host has. ``{batch}`` is the
# refused batch's ID.
_CENTRE = ("该级网关的运维人员排除后会重放该批次，本机无需操作",
           "the level's operators fix it and replay the batch: nothing to do here")
_OWN_CREDENTIALS = ("本节点的凭据文件（[node] key_file）可能不是最新版本：请向省级中心索取并替换，"
                    "之后由省级中心重放该批次",
                    "this node's credentials file ([node] key_file) may be outdated: get the "
                    "current one from the provincial centre and put it in place; the centre "
                    "then replays the batch")
_SEND_AGAIN = ("该副本无法使用：请在本前置机上运行 exgate agent replay {batch} 重新发送",
               "this copy cannot be used: send it again with exgate agent replay {batch} on "
               "this front-end machine")
_CORRECT = ("请改正源数据，并以新的数据版本号（SJBBH）重新发送",
            "correct the source data and send it again as a new version (SJBBH)")
NODE_STEPS: dict[str, tuple[str, str]] = {
    "unknown-node": ("本节点未在该级登记：请联系省级中心登记（exgate node add），之后由其重放"
                     "该批次",
                     "this node is not registered at that level: ask the provincial centre to "
                     "register it (exgate node add); it then replays the batch"),
    "node-disabled": ("本节点已被省级中心停用：如应恢复，请联系省级中心启用，之后由其重放该批次",
                      "the provincial centre disabled this node: if it should send, ask the "
                      "centre to enable it; it then replays the batch"),
    "unknown-key-version": _OWN_CREDENTIALS,
    "user-mismatch": ("发送该批次的消息服务器用户不是本节点的：请核对 [node] key_file 是否为"
                      "本节点的凭据文件",
                      "another broker user sent the batch: check that [node] key_file is this "
                      "node's own credentials file"),
    "routing-mismatch": ("请核对配置中的 [node] division 与省级中心登记的区划是否一致",
                         "check that [node] division in the config is the division registered "
                         "at the provincial centre"),
    "bad-signature": _OWN_CREDENTIALS,
    "bad-ciphertext": _SEND_AGAIN, "bad-format": _SEND_AGAIN, "too-large": _SEND_AGAIN,
    "sha256-mismatch": _SEND_AGAIN, "missing-batch-id": _SEND_AGAIN,
    "bad-batch-id": _SEND_AGAIN, "head-mismatch": _SEND_AGAIN, "count-mismatch": _SEND_AGAIN,
    "invalid-payload": _CORRECT, "division-outside": _CORRECT,
    "batch-id-reused": ("同一批次号对应了两份内容：请检查本机的发件箱并联系运维",
                        "one batch ID carried two contents: check this machine's outbox and "
                        "contact support"),
    "processing-error": _CENTRE, "dead-lettered": _CENTRE,
}


def node_step(code: str, batch_id: str) -> Localized | None:
    """What the node's staff do about a refusal for ``code`` of batch ``batch_id`` (None:
    an unknown code)."""
    known = NODE_STEPS.get(code)
    if known is None:
        return None
    zh, en = known
    return Localized(zh.format(batch=batch_id), en.format(batch=batch_id))
