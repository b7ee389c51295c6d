"""Command routing: the holder's own NOTIFY channel, the shared fallback, the local fast path."""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from cloud.core.database_url import libpq_dsn
from cloud.hub.envelopes import (
    COMMANDS_CHANNEL,
    DELIVERED_CHANNEL,
    command_channel,
    delivered_channel,
)
from cloud.hub.hub import CommandHub
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader

NOTIFY_WAIT = 5.0  # seconds a NOTIFY sent in a committed transaction may take to arrive


@contextmanager
def listening(database_url: str, *channels: str) -> Iterator[Callable[[float], list[tuple]]]:
    """LISTEN on `channels`; yields a function returning the (channel, payload) seen so far."""
    connection = psycopg2.connect(libpq_dsn(database_url))
    connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with connection.cursor() as cursor:
        for channel in channels:
            cursor.execute(f'LISTEN "{channel}"')
    seen: list[tuple] = []

    def collect(wait: float) -> list[tuple]:
        if select.select([connection], [], [], wait) != ([], [], []):
            connection.poll()
        while connection.notifies:
            note = connection.notifies.pop(0)
            seen.append((note.channel, note.payload))
        return seen

    try:
        yield collect
    finally:
        connection.close()


def _hub(server: LiveServer) -> CommandHub:
    assert server.app is not None
    return server.app.state.hub


def _trigger(server: LiveServer, device_id: str, headers: dict[str, str]) -> dict:
    with server.client() as client:
        response = client.post(f"/v1/devices/{device_id}/trigger", json={}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_command_is_announced_only_on_the_holding_instances_channel(
    start_server: Callable[..., LiveServer], factory: Factory, database_url: str
) -> None:
    a, b = start_server(), start_server()
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(a.url, device.device_id, device.key).start()
    channels = (command_channel(_hub(a).instance_id), command_channel(_hub(b).instance_id))
    try:
        with listening(database_url, *channels, COMMANDS_CHANNEL) as seen:
            answer = _trigger(b, device.device_id, user.headers)  # made on B, held by A
            assert reader.next().id == answer["trigger_id"]
            notes = seen(NOTIFY_WAIT)
        assert [channel for channel, _ in notes] == [channels[0]]
        assert answer["trigger_id"] in notes[0][1]
    finally:
        reader.close()


def test_a_delivery_is_confirmed_only_to_the_waiting_instance(
    start_server: Callable[..., LiveServer], factory: Factory, database_url: str
) -> None:
    """The holder's confirmation goes to the requesting instance's own channel (one listener
    parses it), not to the shared one every instance hears."""
    a, b = start_server(), start_server()
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(a.url, device.device_id, device.key).start()
    own = {name: delivered_channel(_hub(s).instance_id) for name, s in (("a", a), ("b", b))}
    try:
        with listening(database_url, DELIVERED_CHANNEL, *own.values()) as seen:
            answer = _trigger(b, device.device_id, user.headers)  # made on B, held by A
            assert answer["status"] == "sent"  # B heard A's confirmation
            notes = seen(NOTIFY_WAIT)
        assert [channel for channel, _ in notes] == [own["b"]]
        assert answer["trigger_id"] in notes[0][1].split(",")
        assert reader.next().id == answer["trigger_id"]
    finally:
        reader.close()


def test_a_command_for_an_offline_device_goes_to_the_shared_channel(
    live_server: LiveServer, factory: Factory, database_url: str
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    with listening(database_url, COMMANDS_CHANNEL) as seen:
        answer = _trigger(live_server, device.device_id, user.headers)
        notes = seen(NOTIFY_WAIT)
    assert answer["status"] == "pending"
    assert [channel for channel, _ in notes] == [COMMANDS_CHANNEL]
    assert answer["trigger_id"] in notes[0][1]
    # Still durable: the device gets it from its backlog when it connects.
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        assert reader.next().id == answer["trigger_id"]
    finally:
        reader.close()


def test_the_local_fast_path_delivers_without_any_notify_and_only_once(
    live_server: LiveServer, factory: Factory, database_url: str
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    own = command_channel(_hub(live_server).instance_id)
    try:
        with listening(database_url, own, COMMANDS_CHANNEL) as seen:
            answer = _trigger(live_server, device.device_id, user.headers)
            assert answer["status"] == "sent"
            assert reader.next().id == answer["trigger_id"]
            assert seen(0.5) == []
        # A second hand-over of the same command (as a NOTIFY or backlog would be) is dropped.
        envelope = {
            "command_id": answer["trigger_id"],
            "type": "capture",
            "issued_at": None,
            "expires_at": None,
            "payload": {"trigger_id": answer["trigger_id"], "trigger_type": "manual"},
        }
        hub = _hub(live_server)
        assert live_server.app is not None
        loop = live_server.app.state.loop
        loop.call_soon_threadsafe(hub.hand_over, device.device_id, envelope)
        reader.assert_quiet(1.0)
    finally:
        reader.close()
