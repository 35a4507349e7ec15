"""What ``exgate demo`` says as it goes, in Chinese (default) and English."""

from __future__ import annotations

import logging

import click

__all__ = ["say", "word"]

_TEXT = {
    "workdir": ("工作目录：{path}", "work folder: {path}"),
    "not-ours": ("{path} 既不是空目录，也不是此前演示的工作目录；为免误删，未做任何修改。"
                 "请用 --workdir 指定新目录。",
                 "{path} is neither empty nor an earlier demo's work folder; to delete "
                 "nothing by mistake, nothing was changed. Give a new folder with --workdir."),
    "broker": ("[1/7] 启动私有 RabbitMQ 节点（约 6 秒）：{base}",
               "[1/7] starting a private RabbitMQ node (about 6 s): {base}"),
    "broker-up": ("      已启动：AMQP 端口 {port}；已声明交换机与四个层级的队列（{levels}）",
                  "      up: AMQP port {port}; exchanges and the queues of four levels "
                  "declared ({levels})"),
    "broker-tmp": ("      （工作目录对 rabbitmq 用户不可达，消息服务器数据放在 {base}）",
                   "      (the rabbitmq user cannot reach the work folder; broker data "
                   "goes to {base})"),
    "nodes": ("[2/7] 开通节点：消息服务器用户、主题权限、签名与加密密钥、节点登记",
              "[2/7] provisioning nodes: broker users, topic permissions, keys, registry"),
    "node": ("      {node}（区划 {division}，{kind}）：路由键 {key}",
             "      {node} (division {division}, {kind}): routing key {key}"),
    "kind-db": ("前置库", "front-end database"),
    "kind-folder": ("XML 投递目录", "XML drop folder"),
    "data": ("[3/7] 生成样例数据（{cases} 个办件）并写入两个数据源，每个数据源故意放入 {bad} "
             "条错误记录", "[3/7] generating {cases} sample cases into the two sources, "
             "each with {bad} deliberately bad records"),
    "source": ("      {node}：{valid} 条有效 + {invalid} 条错误 → {where}",
               "      {node}: {valid} valid + {invalid} bad → {where}"),
    "agents": ("[4/7] 运行前置机代理（agent once）：采集、校验、入发件箱、加密签名后发送",
               "[4/7] running the agents (agent once): read, validate, journal, seal, send"),
    "agent": ("      {node}：退出码 {code}（1 表示有记录被拒收，属预期）",
              "      {node}: exit code {code} (1 means some records were rejected, as "
              "expected)"),
    "gateways": ("[5/7] 运行省、市、两个县的网关（gateway run --drain），写入各级 SQLite 监察库",
                 "[5/7] running the province, city and two county gateways (gateway run "
                 "--drain) into their SQLite stores"),
    "gateway": ("      {division}：退出码 {code}", "      {division}: exit code {code}"),
    "receipts": ("[6/7] 前置机代理再运行一次，收取三级回执",
                 "[6/7] running the agents once more to collect the receipts of all "
                 "three levels"),
    "status": ("[7/7] 同步状态（从各级监察库与前置机发件箱读出）：",
               "[7/7] sync status (read back from the stores and the outboxes):"),
    "stopping": ("停止私有 RabbitMQ 节点…", "stopping the private RabbitMQ node…"),
    "where": ("配置、监察库、发件箱与日志保留在 {path}：\n"
              "  各级网关配置与监察库：{central}/<区划>/gateway.toml、store.db\n"
              "  前置机配置、发件箱与数据源：{nodes}/<节点>/\n"
              "  日志：{log}",
              "configs, stores, outboxes and logs are kept in {path}:\n"
              "  gateway configs and stores: {central}/<division>/gateway.toml, store.db\n"
              "  agent configs, outboxes and sources: {nodes}/<node>/\n"
              "  log: {log}"),
    "done": ("演示完成，用时 {seconds:.0f} 秒。", "demo finished in {seconds:.0f} s."),
    "dashboard": ("省级监察中心看板：{url}/ （按 Ctrl-C 结束）",
                  "the provincial centre's dashboard: {url}/ (Ctrl-C to stop)"),
    "dashboard-once": ("省级监察中心看板可在终端运行 make demo 时浏览：{url}/"
                       "（非终端运行，已退出）",
                       "the provincial centre's dashboard serves at {url}/ when make demo runs "
                       "on a terminal (not a terminal: exiting)"),
    "failed": ("演示失败：{error}（详见 {log}）", "demo failed: {error} (see {log})"),
    "interrupted": ("演示已中断。", "demo interrupted."),
}


def say(name: str, lang: str, /, **args: object) -> None:
    """Print one narration line in the user's language (and log it, with its time)."""
    zh, en = _TEXT[name]
    click.echo((en if lang == "en" else zh).format(**args))
    logging.getLogger("exgate.demo").info("%s", en.format(**args).strip())


def word(name: str, lang: str) -> str:
    zh, en = _TEXT[name]
    return en if lang == "en" else zh
