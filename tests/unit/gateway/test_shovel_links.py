"""The shovel's source queue on the upstream: a broker that cannot be reached is named
(host:port, vhost; never the link user's password) and retried, whatever pika raised."""

from __future__ import annotations

from typing import Any

import pika
import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from adapters.amqp.errors import BrokerUnavailable
from gateway.federation import link_up
from gateway.link_uri import parse_upstream
from gateway.mgmt_api import ManagementApi
from gateway.shovel_links import shovel_upstream, shovels_up
from schemas.errors import ConfigError


class CityApi(ManagementApi):
    def get(self, path: str) -> Any:
        return {"name": "city"}


def test_a_silent_upstream_is_a_broker_away_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def silent(parameters: object) -> None:
        raise AMQPConnectorStackTimeout("Timeout during AMQP handshake")

    monkeypatch.setattr(pika, "BlockingConnection", silent)
    api = CityApi("http://127.0.0.1:1", "admin", "pw")
    with pytest.raises(BrokerUnavailable) as away:
        url = "amqp://link:s3cret@county-mq:5673/exgate"
        shovels_up(api, "/", url, shovel_upstream(parse_upstream(url)), "430102",
                   {"exgate.records": "exgate.records.from.430102"}, 5)
    en, zh = str(away.value), away.value.message("zh")
    assert "broker county-mq:5673 (vhost exgate) unavailable: connected, but no AMQP" in en
    assert "消息服务器 county-mq:5673（虚拟主机 exgate）不可用" in zh
    assert "s3cret" not in en + zh


@pytest.mark.parametrize(("url", "said"), [
    ("amqps://link:s3cret@county-mq:5671/exgate?cacertfile=/nowhere/ca.pem"
     "&verify=verify_peer",
     "--upstream: /nowhere/ca.pem cannot be read here; exgate declares the shovel's source "
     "queue itself and needs the same files on this machine"),
    ("amqp://link:s3cret@county-mq:99999/exgate",
     "--upstream: its host or port does not parse: Port out of range 0-65535"),
])
def test_an_upstream_exgate_cannot_dial_is_a_config_error_before_anything_changes(
        url: str, said: str) -> None:
    class Untouchable(ManagementApi):
        def _send(self, method: str, path: str, body: Any, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{method} {path}: nothing is asked of a broker first")

    api = Untouchable("http://127.0.0.1:1", "admin", "pw")
    with pytest.raises(ConfigError) as refused:
        link_up(api, url, "430102", via="shovel")
    assert str(refused.value) == said
    assert "s3cret" not in str(refused.value) + refused.value.message("zh")
