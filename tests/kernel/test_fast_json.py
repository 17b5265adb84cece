"""The recorder's fast JSON reads and writes exactly what the standard library does."""

from __future__ import annotations

import json

import pytest
from lightning_kernel import _json
from lightning_kernel._codec import decode_record, encode
from lightning_kernel._events import WorkStateChanged
from lightning_kernel.errors import EventError


@pytest.mark.parametrize(
    "value",
    [
        {"i": 2**70, "j": -(2**64)},  # beyond 64 bits: orjson would read floats
        {"x": 0.1, "y": 1e300, "s": "héllo ☃", "n": None, "l": [1, [2, {"a": True}]]},
        {"digits": "1234567890123456789012"},
    ],
)
def test_strict_dumps_and_loads_round_trip_exactly(value: dict) -> None:
    data = _json.dumps_strict(value)
    assert json.loads(data) == value
    got = _json.loads(data)
    assert got == value
    if "i" in value:
        assert data.startswith(b" "), "written by json: marked so that json reads it back"
        assert isinstance(got["i"], int) and got["i"] == 2**70
    assert json.loads(_json.dumps(value)) == value


def test_strict_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(ValueError):
        _json.dumps_strict({"x": float("nan")})
    with pytest.raises(TypeError):
        _json.dumps_strict({"x": object()})
    assert _json.dumps_strict({"x": None}) == b' {"x":null}'


def test_dumps_falls_back_for_what_only_json_writes() -> None:
    assert json.loads(_json.dumps({1: "a"})) == {"1": "a"}


def test_decoded_events_keep_big_integers() -> None:
    _, _, data = encode(WorkStateChanged(work="root.w", call="c", changes={"i": 2**80}), "r1", "t")
    record = decode_record(data, 7)
    assert record.body["changes"]["i"] == 2**80 and record.seq == 7


def test_a_payload_that_is_not_an_event_is_named() -> None:
    with pytest.raises(EventError, match="stream sequence 9 is not a lightning-kernel event"):
        decode_record(b"{not json", 9)
    with pytest.raises(EventError, match="stream sequence 10"):
        decode_record(b'{"id": "x"}', 10)
