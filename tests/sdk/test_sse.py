"""The server-sent events wire format, without sockets."""

from __future__ import annotations

from lightning_kernel._sse import KEEP_ALIVE, Message, Parser, encode


def parse(data: bytes) -> list[Message]:
    parser = Parser()
    out = [parser.feed(line) for line in data.decode().splitlines(keepends=True)]
    return [m for m in out if m is not None]


def test_messages_round_trip_with_their_ids():
    stream = (
        encode("event", {"seq": 3, "body": {"text": "a\nb"}}, 3)
        + KEEP_ALIVE
        + encode("end", {"status": "ok"})
    )
    assert parse(stream) == [
        Message("event", {"seq": 3, "body": {"text": "a\nb"}}, "3"),
        Message("end", {"status": "ok"}, "3"),  # the last id carries over, as in EventSource
    ]


def test_one_message_is_one_data_line():
    assert encode("log", {"line": "x\ny"}, 7) == b'id: 7\nevent: log\ndata: {"line":"x\\ny"}\n\n'


def test_the_standard_details():
    # Comments and unknown fields are skipped, data lines join with newlines, "data:" needs no space,
    # CRLF ends lines too, blank lines without data dispatch nothing, a missing event is "message".
    stream = b': a comment\nretry: 10\ndata: [1,\ndata: 2]\n\n\n\ndata:{"a":1}\r\nevent: x\r\n\r\n'
    assert parse(stream) == [Message("message", [1, 2], None), Message("x", {"a": 1}, None)]
