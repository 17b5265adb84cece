"""Payload between two Works, through the store, never inside an event."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import Work
from lightning_kernel.errors import ArtifactError, KernelError
from lightning_kernel.storage import ArtifactStore, Payload
from lightning_kernel.storage._payload import is_payload_dict

MakeWork = Callable[..., Work]


@dataclass
class Model:
    weights: list[float]
    name: str


def test_payload_between_two_works(store: ArtifactStore, make_work: MakeWork) -> None:
    producer, consumer = make_work(store, "root.producer"), make_work(store, "root.consumer")
    value = {"model": Model([0.5] * 1000, "m"), "tokenizer": lambda s: s.split()}
    with producer.running():
        sent = Payload(value)
        state = sent.to_dict()  # what the runtime writes in the Work's state
        assert sent.to_dict() == state  # saved once
    assert is_payload_dict(state) and state["origin"] == "root.producer"
    assert len(json.dumps(state)) < 200  # only the reference travels
    ((kind, body),) = producer.events
    assert kind == "payload.saved" and body["ref"] == state["ref"] and body["bytes"] > 1000

    received = Payload.from_dict(json.loads(json.dumps(state)))
    with consumer.running():
        got = received.value
        assert received.value is got  # loaded once
    assert got["model"] == Model([0.5] * 1000, "m") and got["tokenizer"]("a b") == ["a", "b"]
    assert consumer.kinds() == ["payload.loaded"] and received.origin_name == "root.producer"


def test_setting_a_new_value_saves_again(local_store: ArtifactStore, make_work: MakeWork) -> None:
    with make_work(local_store, "root.p").running():
        p = Payload([1, 2])
        first = p.to_dict()["ref"]
        p.value = [1, 2, 3]
        assert p.to_dict()["ref"] != first


def test_payload_needs_a_work(local_store: ArtifactStore, make_work: MakeWork) -> None:
    with pytest.raises(KernelError, match=r"inside a LightningWork's run\(\)"):
        Payload(1).to_dict()
    with make_work(local_store, "root.p").running():
        state = Payload(1).to_dict()
    with pytest.raises(KernelError, match=r"Payload\.value can only be called inside"):
        _ = Payload.from_dict(state).value


def test_tampered_payload_is_not_unpickled(local_store: ArtifactStore, make_work: MakeWork) -> None:
    work = make_work(local_store, "root.p")
    with work.running():
        state = Payload("secret").to_dict()
    ref = state["ref"]
    local_store.backend.write(f"cas/{ref[:2]}/{ref}", b"cos\nsystem\n(S'echo pwned'\ntR.")  # type: ignore[attr-defined]
    with work.running(), pytest.raises(ArtifactError, match=r"corrupt"):
        _ = Payload.from_dict(state).value


def test_not_a_payload_dict() -> None:
    with pytest.raises(ArtifactError, match="not the JSON form of a Payload"):
        Payload.from_dict({"type": "__path__", "path": "lit://x"})
