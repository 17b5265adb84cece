"""The flow side of a request (``_requests.answer``, on a real fold of a run's events) and the server
side's wait for its answer (``_flow_http.Gateway``, on a real nats-server)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel import _projection as projection
from lightning_kernel._codec import decode_record, encode
from lightning_kernel._events import (
    Event,
    FlowRequestAnswered,
    FlowRequestReceived,
    FlowStateChanged,
    RunCreated,
)
from lightning_kernel._flow_http import Gateway
from lightning_kernel._iteration import FlowIteration
from lightning_kernel._records import EventRecord
from lightning_kernel._requests import answer
from lightning_kernel.api import Get, Post
from pydantic import BaseModel


class Order(BaseModel):
    item: str
    qty: int = 1


class Till(LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.orders: list[str] = []
        self.total = 0

    def order(self, order: Order) -> dict[str, Any]:
        self.orders.append(order.item)  # in place: the diff must still see it
        self.total += order.qty
        return {"total": self.total}

    def scale(self, by: int, note: str = "") -> int:
        self.total *= by
        return self.total

    def jam(self) -> None:
        raise KeyError("drawer")

    def odd(self) -> object:
        return object()

    def configure_api(self) -> list[Any]:
        return [
            Post("/order", self.order),
            Post("/scale", self.scale),
            Post("/jam", self.jam),
            Get("/odd", self.odd),
        ]


def rec(seq: int, event: Event) -> EventRecord:
    return decode_record(encode(event, "r1", "test")[2], seq)


def setup() -> tuple[FlowIteration, dict[str, Any]]:
    app = LightningApp(Till())
    flow = FlowIteration(app, echo=False)
    state = projection.apply(
        projection.empty(), rec(1, RunCreated(name="t", app_file="t.py", app="-", components=app.describe()))
    )
    return flow, state


def ask(
    flow: FlowIteration, state: dict[str, Any], route: str, method: str = "POST", **kw: Any
) -> list[Event]:
    request = rec(2, FlowRequestReceived(id="q", route=route, method=method, **kw))
    return answer(flow, projection.apply(state, request), request).events


def test_a_handler_changes_state_and_answers():
    flow, state = setup()
    events = ask(flow, state, "/order", data={"item": "tea", "qty": 2})
    assert events == [
        FlowStateChanged(changes={"root": {"orders": ["tea"], "total": 2}}),
        FlowRequestAnswered(id="q", status=200, response={"total": 2}),
    ]
    assert state["components"]["root"]["vars"] == {"orders": [], "total": 0}, "the state is never mutated"
    scaled = ask(flow, state, "/scale", query={"by": "3"})  # a query string, converted to the int it wants
    assert scaled == [FlowRequestAnswered(id="q", status=200, response=0)]


def test_errors_answer_without_changing_anything():
    flow, state = setup()
    [jam] = ask(flow, state, "/jam")
    assert (jam.status, jam.response) == (500, "KeyError: 'drawer'")
    [odd] = ask(flow, state, "/odd", method="GET")
    assert odd.status == 500 and "not JSON" in odd.response
    [missing] = ask(flow, state, "/scale")
    assert missing.status == 422 and "missing parameter 'by'" in missing.response
    [bad] = ask(flow, state, "/scale", data={"by": "lots"})
    assert bad.status == 422 and "'by' must be int" in bad.response
    [unknown] = ask(flow, state, "/scale", data={"by": 2, "why": "x"})
    assert unknown.status == 422 and "unexpected parameters ['why']" in unknown.response
    [model] = ask(flow, state, "/order", data={"qty": 1})
    assert model.status == 422 and "item" in model.response
    [nowhere] = ask(flow, state, "/nowhere")
    assert (nowhere.status, nowhere.response) == (404, "the flow has no POST /nowhere")


@pytest.mark.timeout(30)
def test_the_gateway_answers_504_when_no_flow_answers(nats_server):
    from lightning_kernel._bus import Bus

    async def main() -> tuple[int, Any]:
        bus = await Bus.connect(nats_server.url, nats_server.token)
        try:
            await bus.ensure_streams()
            server = SimpleNamespace(
                kernel=SimpleNamespace(bus=bus, recorder=None, runs={}), default_run=None
            )
            gateway = Gateway(server)  # type: ignore[arg-type]  # the parts of a Server it reads
            driver = SimpleNamespace(run_id="nobody-drives-this")
            try:
                return await gateway.call(driver, "POST", "/x", None, {}, timeout=0.3)  # type: ignore[arg-type]
            finally:
                await gateway.close()
        finally:
            await bus.close()

    status, message = asyncio.run(main())
    assert status == 504 and "did not answer POST /x within 0.3 s" in message
