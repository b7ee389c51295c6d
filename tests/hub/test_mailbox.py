"""The per-stream mailbox: bounded, deduplicating, closable."""

from __future__ import annotations

import asyncio

import pytest

from cloud.hub.mailbox import Command, Mailbox, StreamClosed


def _command(command_id: str) -> Command:
    return Command.from_envelope(
        {"command_id": command_id, "type": "capture", "issued_at": None, "expires_at": None}
    )


async def test_full_mailbox_refuses_instead_of_waiting() -> None:
    mailbox = Mailbox(maxsize=2)
    assert mailbox.offer(_command("a")) and mailbox.offer(_command("b"))
    assert not mailbox.offer(_command("c"))


async def test_mailbox_drops_a_command_id_it_already_queued() -> None:
    mailbox = Mailbox(maxsize=4)
    mailbox.offer(_command("a"))
    mailbox.offer(_command("a"))
    assert [c.command_id for c in mailbox.drain()] == ["a"]


async def test_idle_mailbox_times_out_and_close_wakes_a_waiting_reader() -> None:
    mailbox = Mailbox(maxsize=4)
    assert await mailbox.next(0.01) is None
    waiting = asyncio.create_task(mailbox.next(10))
    await asyncio.sleep(0)
    mailbox.close("bye")
    with pytest.raises(StreamClosed, match="bye"):
        await asyncio.wait_for(waiting, 1)


def test_event_bytes_follow_the_wire_contract() -> None:
    command = Command.from_envelope(
        {"command_id": "cfg_2", "type": "config", "expires_at": None, "payload": {"version": 2}}
    )
    lines = command.data.decode().split("\n")
    assert lines[:2] == ["event: config", "id: cfg_2"]
    assert lines[2].startswith("data: {") and lines[3:] == ["", ""]
