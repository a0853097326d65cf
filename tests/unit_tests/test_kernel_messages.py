"""The agent's Jupyter messages: what it sends is signed, and only signed messages are read."""

from __future__ import annotations

import json

from langchain_e2b.local.kernels import _DELIM, _Session


def test_a_signed_message_round_trips() -> None:
    session = _Session(b"secret")
    msg_id, frames = session.frames("execute_request", {"code": "1+1"})
    message = session.message(frames)
    assert message is not None
    assert message["msg_id"] == msg_id
    assert message["content"] == {"code": "1+1"}


def test_unsigned_forged_and_foreign_messages_are_dropped() -> None:
    session = _Session(b"secret")
    _, frames = session.frames("execute_request", {"code": "1+1"})
    unsigned = [_DELIM, b"", *frames[2:]]
    forged = [_DELIM, b"0" * 64, *frames[2:]]
    _, foreign = _Session(b"another key").frames("execute_request", {"code": "1+1"})
    tampered = [*frames[:5], json.dumps({"code": "import os"}).encode()]
    for bad in (unsigned, forged, foreign, tampered, frames[:4], [b"no delimiter"]):
        assert session.message(bad) is None


def test_a_signed_message_that_is_not_json_is_dropped() -> None:
    session = _Session(b"secret")
    parts = [b"{not json", b"{}", b"{}", b"{}"]
    assert session.message([_DELIM, session._sign(parts), *parts]) is None
