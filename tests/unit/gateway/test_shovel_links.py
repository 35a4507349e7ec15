"""The shovel's source queue on the upstream: a broker that cannot be reached is named
(host:port, vhost; never the link user's password) and retried, whatever pika raised."""

from __future__ import annotations

from typing import Any

import pika
import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from adapters.amqp.errors import BrokerUnavailable
from gateway.link_uri import parse_upstream
from gateway.mgmt_api import ManagementApi
from gateway.shovel_links import shovel_upstream, shovels_up


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
