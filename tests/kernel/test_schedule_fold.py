"""Schedules without a server: the fold of their events, what ``flow.schedule()`` returns in an
iteration, what the loop publishes at a time (``plan``), the cron adapter and the clocks."""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel import _projection as projection
from lightning_kernel import _schedule as schedules
from lightning_kernel._clock import FileClock, SystemClock, clock_from_env
from lightning_kernel._codec import decode_record, encode
from lightning_kernel._cron import ALIASES, expand, latest_at_or_before, next_after
from lightning_kernel._events import (
    Event,
    FlowStateChanged,
    RunCreated,
    ScheduleConsumed,
    ScheduleRegistered,
    ScheduleStarted,
    ScheduleTicked,
)
from lightning_kernel._iteration import FlowIteration
from lightning_kernel._records import EventRecord
from lightning_kernel.errors import ConfigError, ScheduleError

H0 = float(calendar.timegm((2030, 1, 1, 0, 0, 0)))
"""2030-01-01 00:00 UTC: the tests read cron times in UTC (``utc`` fixture)."""
HOUR = 3600.0


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    schedules._next.cache_clear()
    yield
    monkeypatch.undo()
    time.tzset()
    schedules._next.cache_clear()


def rec(seq: int, event: Event, run: str = "r1") -> EventRecord:
    _, _, data = encode(event, run, "test")
    return decode_record(data, seq)


class Hourly(LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    def run(self) -> None:
        if self.schedule("hourly", user_key="h"):
            self.ticks += 1


def created(app: LightningApp) -> EventRecord:
    return rec(1, RunCreated(name="app", app_file="/a.py", app="ref", components=app.describe()))


class Log:
    """A run's events folded one by one, as the loop and the replayer fold them."""

    def __init__(self, app: LightningApp) -> None:
        self.seq = 1
        self.state = projection.apply(projection.empty(), created(app))

    def add(self, *events: Event) -> None:
        for e in events:
            self.seq += 1
            self.state = projection.apply(self.state, rec(self.seq, e))

    def entry(self, flow: str = "root", key: str = "h") -> dict[str, Any]:
        entry: dict[str, Any] = self.state["schedules"][flow][key]
        return entry


# -- the fold -----------------------------------------------------------------------------------------


def test_the_fold_follows_a_schedule_from_registration_to_consumed_tick() -> None:
    log = Log(LightningApp(Hourly()))
    log.add(ScheduleRegistered(flow="root", key="h", cron="@hourly"))
    assert log.entry() == {"cron": "@hourly", "start": None, "last": None, "due": None}
    log.add(ScheduleStarted(flow="root", key="h", at=H0 + 600))
    assert log.entry() == {"cron": "@hourly", "start": H0 + 600, "last": H0 + 600, "due": None}
    log.add(ScheduleTicked(flow="root", key="h", at=H0 + HOUR))
    assert log.entry()["due"] == H0 + HOUR and log.entry()["last"] == H0 + HOUR
    log.add(ScheduleConsumed(flow="root", key="h", at=H0 + HOUR))
    assert log.entry()["due"] is None and log.entry()["last"] == H0 + HOUR


def test_the_fold_keeps_a_newer_tick_due_and_ignores_repeats() -> None:
    log = Log(LightningApp(Hourly()))
    log.add(ScheduleRegistered(flow="root", key="h", cron="@hourly", start=H0))
    assert log.entry()["last"] == H0  # a start_time needs no flow.schedule_started
    log.add(ScheduleStarted(flow="root", key="h", at=H0 + 5))
    assert log.entry()["start"] == H0
    log.add(ScheduleRegistered(flow="root", key="h", cron="*/5 * * * *"))
    assert log.entry()["cron"] == "@hourly"
    log.add(
        ScheduleTicked(flow="root", key="h", at=H0 + HOUR),
        ScheduleTicked(flow="root", key="h", at=H0 + 2 * HOUR),
    )
    # the iteration that ran on the first tick consumes that one; the second is still due
    log.add(ScheduleConsumed(flow="root", key="h", at=H0 + HOUR))
    assert log.entry()["due"] == H0 + 2 * HOUR
    log.add(ScheduleTicked(flow="root", key="h", at=H0 + HOUR))
    assert log.entry()["last"] == H0 + 2 * HOUR, "a tick the schedule is past changes nothing"
    log.add(ScheduleTicked(flow="nobody", key="h", at=H0))
    assert "nobody" not in log.state["schedules"]


def test_the_fold_is_pure() -> None:
    log = Log(LightningApp(Hourly()))
    log.add(ScheduleRegistered(flow="root", key="h", cron="@hourly", start=H0))
    before = log.state
    after = projection.apply(before, rec(9, ScheduleTicked(flow="root", key="h", at=H0 + HOUR)))
    assert before["schedules"]["root"]["h"]["due"] is None
    assert after["schedules"]["root"]["h"]["due"] == H0 + HOUR


# -- the iteration ------------------------------------------------------------------------------------


def test_an_iteration_registers_on_the_first_call_then_sees_only_ticks() -> None:
    app = LightningApp(Hourly())
    flow = FlowIteration(app, echo=False)
    log = Log(app)
    first = flow.run(log.state)
    registered = ScheduleRegistered(flow="root", key="h", cron="@hourly", start=None)
    assert first.events[-1] == registered
    assert first.events[0].body()["changes"] == {"root": {"ticks": 1}}
    log.add(*first.events, ScheduleStarted(flow="root", key="h", at=H0))
    assert flow.run(log.state).events == [], "no tick: schedule() is False and nothing changes"
    log.add(ScheduleTicked(flow="root", key="h", at=H0 + HOUR))
    on_tick = flow.run(log.state)
    assert on_tick.events[0].body()["changes"] == {"root": {"ticks": 2}}
    assert on_tick.events[-1] == ScheduleConsumed(flow="root", key="h", at=H0 + HOUR)
    log.add(*on_tick.events)
    assert flow.run(log.state).events == []


def test_a_due_tick_is_consumed_by_the_next_iteration_even_if_it_does_not_call_schedule() -> None:
    class Gated(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.gate = True
            self.ticks = 0

        def run(self) -> None:
            if self.gate and self.schedule("*/10 * * * *", user_key="g"):
                self.ticks += 1

    app = LightningApp(Gated())
    flow = FlowIteration(app, echo=False)
    log = Log(app)
    log.add(*flow.run(log.state).events, ScheduleStarted(flow="root", key="g", at=H0))
    log.add(
        ScheduleTicked(flow="root", key="g", at=H0 + 600), FlowStateChanged(changes={"root": {"gate": False}})
    )
    events = flow.run(log.state).events
    assert events == [ScheduleConsumed(flow="root", key="g", at=H0 + 600)]


def test_call_sites_are_keys_and_aliases_expand() -> None:
    class Two(LightningFlow):
        def run(self) -> None:
            self.schedule("daily")
            self.schedule("daily")
            for _ in range(2):
                self.schedule("0 9 * * 1-5")  # one call site called twice: one registration

    app = LightningApp(Two())
    events = FlowIteration(app, echo=False).run(Log(app).state).events
    keys = [(e.body()["key"], e.body()["cron"]) for e in events]
    assert len(keys) == 3 and len({k for k, _ in keys}) == 3, keys
    assert [cron for _, cron in keys] == ["@daily", "@daily", "0 9 * * 1-5"]
    assert all(k.split("@")[-1].startswith("test_schedule_fold.py:") for k, _ in keys[:2])


def test_a_start_time_is_recorded_in_epoch_seconds() -> None:
    from datetime import datetime, timezone

    class Started(LightningFlow):
        def run(self) -> None:
            self.schedule("hourly", start_time=datetime(2030, 1, 1, tzinfo=timezone.utc), user_key="s")

    app = LightningApp(Started())
    (event,) = FlowIteration(app, echo=False).run(Log(app).state).events
    assert event == ScheduleRegistered(flow="root", key="s", cron="@hourly", start=H0)


def test_a_bad_pattern_fails_the_run_with_the_flow_and_the_pattern_named() -> None:
    class Bad(LightningFlow):
        def run(self) -> None:
            self.schedule("every tuesday")

    app = LightningApp(Bad())
    outcome = FlowIteration(app, echo=False).run(Log(app).state)
    assert outcome.end is not None and outcome.end.status == "failed"
    assert "root.schedule('every tuesday')" in outcome.end.message
    assert "hourly" in outcome.end.message
    with pytest.raises(ScheduleError, match="start_time must be a datetime"):
        schedules.call(app.root, "hourly", "tomorrow", None)


def test_outside_a_kernel_the_first_call_is_true_and_then_false() -> None:
    flow = Hourly()
    flow.run()
    flow.run()
    assert flow.ticks == 1


# -- the loop's plan ----------------------------------------------------------------------------------


def _state(**entries: dict[str, Any]) -> dict[str, Any]:
    return {"schedules": {"root": entries}}


def test_plan_starts_a_schedule_and_names_its_first_tick() -> None:
    sent: dict[tuple[str, str], float] = {}
    state = _state(h={"cron": "@hourly", "start": None, "last": None, "due": None})
    events, nxt = schedules.plan(state, H0 + 600, sent)
    assert events == [ScheduleStarted(flow="root", key="h", at=H0 + 600)]
    assert nxt == H0 + HOUR and sent == {("root", "h"): H0 + 600}
    assert schedules.plan(state, H0 + 700, sent) == ([], H0 + HOUR), "a start in flight is not sent twice"


def test_plan_ticks_once_however_many_ticks_passed() -> None:
    state = _state(q={"cron": "*/15 * * * *", "start": H0, "last": H0, "due": None})
    assert schedules.plan(state, H0 + 899, {}) == ([], H0 + 900)
    events, nxt = schedules.plan(state, H0 + 900, {})
    assert events == [ScheduleTicked(flow="root", key="q", at=H0 + 900)] and nxt == H0 + 1800
    # five hours down: one catch-up tick, at the newest time that passed, then the cadence
    sent: dict[tuple[str, str], float] = {}
    events, nxt = schedules.plan(state, H0 + 5 * HOUR + 100, sent)
    assert events == [ScheduleTicked(flow="root", key="q", at=H0 + 5 * HOUR)]
    assert nxt == H0 + 5 * HOUR + 900
    assert schedules.plan(state, H0 + 5 * HOUR + 200, sent) == ([], nxt), "the tick in flight counts"


def test_plan_of_no_schedule_is_nothing() -> None:
    assert schedules.plan({}, H0, {}) == ([], None)


# -- the cron adapter and the clocks ------------------------------------------------------------------


def test_cron_adapter() -> None:
    assert {expand(a) for a in ALIASES} == set(ALIASES.values())
    assert expand(" */5 * * * * ") == "*/5 * * * *"
    assert next_after("@hourly", H0) == H0 + HOUR, "strictly after"
    assert latest_at_or_before("@hourly", H0) == H0, "at or before"
    assert latest_at_or_before("@hourly", H0 - 1) == H0 - HOUR
    assert next_after("0 9 * * 1-5", H0) == H0 + 9 * HOUR  # 2030-01-01 is a Tuesday
    with pytest.raises(ScheduleError, match=r"root\.schedule\('61 \* \* \* \*'\)"):
        expand("61 * * * *", "root")
    with pytest.raises(ScheduleError, match="a cron pattern is a string"):
        expand(5, "root")  # type: ignore[arg-type]


def test_file_clock_wakes_when_the_file_passes_the_time(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text(f"{H0}\n")
    clock = FileClock(path)
    assert clock.now() == H0

    async def main() -> None:
        sleeping = asyncio.ensure_future(clock.wait_until(H0 + HOUR))
        path.write_text(str(H0 + HOUR - 1))
        done, _ = await asyncio.wait({sleeping}, timeout=0.2)
        assert not done, "an hour has not passed on the clock"
        path.write_text("")  # a file being rewritten reads as the last time read
        assert clock.now() == H0 + HOUR - 1
        path.write_text(str(H0 + HOUR))
        await asyncio.wait_for(sleeping, 10)

    asyncio.run(main())


def test_clock_from_env(tmp_path: Path) -> None:
    assert isinstance(clock_from_env({}), SystemClock)
    assert isinstance(clock_from_env({"LK_CLOCK": "system"}), SystemClock)
    (tmp_path / "t").write_text("12.5")
    clock = clock_from_env({"LK_CLOCK": f"file:{tmp_path / 't'}"})
    assert isinstance(clock, FileClock) and clock.now() == 12.5
    with pytest.raises(ConfigError, match="LK_CLOCK='sundial'"):
        clock_from_env({"LK_CLOCK": "sundial"})
    with pytest.raises(ConfigError, match="must hold the current time"):
        clock_from_env({"LK_CLOCK": f"file:{tmp_path / 'missing'}"})
