"""``exgate broker link``: declare one link on the receiving broker (the work is in
``gateway.federation``), then wait until it runs and say so (zh by default, en).

The upstream URI's password, given inline or in ``$EXGATE_UPSTREAM_PASSWORD``, is never
printed: the management API may echo it in an error body. A link that does not run in
time stays declared and keeps retrying; the command prints each of its states (an
authentication failure, a refused connection …) so the operator sees why.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.federation import (
    PASSWORD_ENV,
    LinkResult,
    link_down,
    link_states,
    link_up,
    wait_running,
    with_password,
)
from gateway.link_uri import mask_key_password
from gateway.mgmt_api import ManagementApi, ManagementError
from gateway.node_command import admin_api
from schemas.errors import ConfigError, ExgateError, RetriableError, message_of
from schemas.messages import said

__all__ = ["run_link"]

_TEXT: dict[str, tuple[str, str]] = {
    "up": ("已建立上行链路（{via}）：{division} 的数据与心跳从 {upstream} 汇入本消息服务器"
           "（{names}，max-hops {hops}）",
           "linked up ({via}): records and heartbeats of {division} come from {upstream} "
           "into this broker ({names}, max-hops {hops})"),
    "down": ("已建立下行链路（federation）：{division} 的回执从 {upstream} 下发到本消息服务器"
             "（{names}，max-hops {hops}）",
             "linked down (federation): receipts of {division} come from {upstream} to this "
             "broker ({names}, max-hops {hops})"),
    "shovel-receipts": ("回执只能通过联邦（federation）下发：--direction down 不能与 --via "
                        "shovel 同用", "receipts are linked with federation only: "
                        "--direction down does not take --via shovel"),
    "not-running": ("错误：链路已声明，但 {seconds} 秒内未进入运行状态：{states}。它会继续重试；"
                    "请检查上游地址、链路用户的密码（${env}）以及上游是否可达",
                    "error: the link is declared but not running after {seconds} s: "
                    "{states}. It keeps retrying; check the upstream URI, the link user's "
                    "password (${env}) and that the upstream is reachable"),
    "no-state": ("错误：链路已声明，但无法读取其状态（{error}）；请用 exgate broker start 重启"
                 "本消息服务器，或启用 rabbitmq_federation_management 与 "
                 "rabbitmq_shovel_management 插件",
                 "error: the link is declared but its state cannot be read ({error}); "
                 "restart this broker with exgate broker start, or enable the "
                 "rabbitmq_federation_management and rabbitmq_shovel_management plugins"),
    "error": ("错误：{error}", "error: {error}"),
    "unverified": ("警告：链路已加密，但不校验上游的证书，无法确认对端身份；请在 --upstream 中加上 "
                   "cacertfile=/path/ca.pem&verify=verify_peer&server_name_indication=HOST",
                   "warning: the link is encrypted but does not check the upstream's "
                   "certificate, so it cannot tell whom it talks to: add cacertfile=/path/"
                   "ca.pem&verify=verify_peer&server_name_indication=HOST to --upstream"),
    "chain": ("警告：链路只校验上游证书由该 CA 签发，不校验证书中的主机名，该 CA 签发的任何证书"
              "都会被接受；请在 --upstream 中加上 server_name_indication=HOST（上游证书中的"
              "主机名，不支持通配符）",
              "warning: the link checks that the upstream's certificate comes from the CA, not "
              "that it names the upstream, so any certificate of that CA passes: add "
              "server_name_indication=HOST (the name in the upstream's certificate; wildcards "
              "are not accepted) to --upstream"),
}


def _say(name: str, lang: str, /, **values: object) -> str:
    return said(_TEXT, name, lang, **values)


def run_link(*, upstream: str, division: str, direction: str = "up", via: str = "federation",
             admin_url: str | None = None, base: Path | None = None, vhost: str = "/",
             max_hops: int | None = None, lang: str = "zh", wait: float = 15.0) -> int:
    """``exgate broker link``: 0 linked and running, 1 broker or API failure or a link
    not running after ``wait`` seconds (it stays declared and retries), 2 usage or config."""
    def work() -> int:
        if direction == "down" and via != "federation":
            raise ConfigError(_say("shovel-receipts", "en"), zh=_say("shovel-receipts", "zh"))
        url = with_password(upstream)
        api = admin_api(base, admin_url, "--base")
        if direction == "up":
            done = link_up(api, url, division, via=via, vhost=vhost, max_hops=max_hops,
                           lang=lang)
        else:
            done = link_down(api, url, division, vhost=vhost, max_hops=max_hops, lang=lang)
        if (code := _check_running(api, done, vhost, wait, lang)) == 0:
            print(_say(direction, lang, via=done.via, division=division,
                       upstream=done.upstream, names=", ".join(done.names),
                       hops=done.max_hops))
        if done.tls in ("unverified", "chain"):
            print(_say(done.tls, lang), file=sys.stderr)
        return code

    return _guarded(lang, work)


def _check_running(api: ManagementApi, done: LinkResult, vhost: str, wait: float,
                   lang: str) -> int:
    """0 once the links run; else say why (auth_failure, econnrefused …) and 1."""
    try:
        wait_running(api, done, vhost, timeout=wait)
    except ManagementError as exc:
        print(_say("no-state", lang, error=_scrub(message_of(exc, lang))), file=sys.stderr)
        return 1
    except RetriableError:
        states = link_states(api, vhost)
        mine = {name: state for name, state in states.items()
                if name.split(":", 1)[0] in done.names}
        text = "; ".join(f"{name}: {state}" for name, state in sorted(mine.items()))
        print(_say("not-running", lang, seconds=f"{wait:.0f}", env=PASSWORD_ENV,
                   states=_scrub(text or "absent")), file=sys.stderr)
        return 1
    return 0


def _guarded(lang: str, work: Callable[[], int]) -> int:
    try:
        return work()
    except (ExgateError, ValueError) as exc:
        print(_say("error", lang, error=_scrub(message_of(exc, lang))), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError | ValueError) else 1


def _scrub(text: str) -> str:
    """API error bodies may echo the definition: never print a password from a URI."""
    return mask_key_password(re.sub(r"(?i)(amqps?://[^:/@\s\"]+:)[^@/]*@", r"\1***@", text))
