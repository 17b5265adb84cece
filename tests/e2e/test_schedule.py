"""``flow.schedule()`` end to end through the CLI, on a fake clock (``LK_CLOCK=file:PATH``): the test
moves time by writing the file and waits for the line the flow prints on each tick; no test sleeps
for a schedule. The first call is True, ``hourly`` ticks at each fake hour, a cron string at its
times, a Work started under the schedule runs once a tick, a resume after fake downtime gives one
catch-up tick, and the run replays with no difference."""

from __future__ import annotations

import calendar
import queue
import signal
import subprocess
import threading
from typing import Any

APP = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Job(LightningWork):
    def __init__(self):
        super().__init__(parallel=True, cache_calls=False)
        self.last = 0
    def run(self, n):
        self.last = n

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.hourly = 0
        self.quarter = 0
        self.announced = 0
        self.job = Job()
    def run(self):
        if self.schedule("hourly"):
            self.hourly += 1
            print(f"hourly {self.hourly}")
            self.job.run(self.hourly)
        if self.schedule("*/15 * * * *", user_key="quarter"):
            self.quarter += 1
            print(f"quarter {self.quarter}")
        if self.job.has_succeeded and self.announced < self.job.last:
            self.announced = self.job.last
            print(f"job {self.job.last} done")
        if self.hourly >= 3 and self.job.last == 3 and self.job.has_succeeded:
            self.stop(f"hourly {self.hourly} quarter {self.quarter} job {self.job.last}")

app = LightningApp(Root())
"""


def at(hour: int, minute: int = 0) -> float:
    """2030-01-01 hour:minute UTC (the runs read cron times in UTC: TZ=UTC)."""
    return float(calendar.timegm((2030, 1, 1, hour, minute, 0)))


class Running:
    """A ``lightning-kernel`` process whose stdout lines a test waits for."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, *wanted: str, timeout: float = 60) -> None:
        """Wait for the lines ``wanted``, in this order (other lines may come between)."""
        for want in wanted:
            while True:
                try:
                    line = self.lines.get(timeout=timeout)
                except queue.Empty:
                    raise AssertionError(
                        f"no line {want!r} in {timeout} s; the run printed {self.seen}"
                    ) from None
                if line is None:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise AssertionError(f"the run exited before {want!r}; it printed {self.seen}\n{err}")
                self.seen.append(line)
                if line == want:
                    break

    def finish(self, timeout: float = 60) -> str:
        self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return "\n".join(self.seen)


def _fake_clock(lk: Any, t: float) -> Any:
    path = lk.dir / "clock"
    path.write_text(repr(t))
    lk.env.update({"LK_CLOCK": f"file:{path}", "TZ": "UTC"})
    return path


def _ticks(history: list[dict[str, Any]], key_prefix: str) -> list[float]:
    return [
        e["body"]["at"]
        for e in history
        if e["type"] == "flow.schedule_ticked" and e["body"]["key"].startswith(key_prefix)
    ]


def _job_runs(history: list[dict[str, Any]]) -> list[list[Any]]:
    return [e["body"]["args"] for e in history if e["type"] == "work.run_requested"]


def test_hourly_and_a_cron_string_tick_on_the_fake_clock_and_the_run_replays(lk: Any) -> None:
    clock = _fake_clock(lk, at(0, 10))
    run = Running(lk.popen("run", "app", lk.app(APP)))
    # the first call of each schedule is True
    run.expect("hourly 1", "quarter 1")
    clock.write_text(repr(at(0, 15)))
    run.expect("quarter 2")
    # 00:30 and 00:45 passed unseen: with 01:00 they are one tick
    clock.write_text(repr(at(1)))
    run.expect("hourly 2", "quarter 3")
    clock.write_text(repr(at(2)))
    out = run.finish()
    assert run.proc.returncode == 0, out
    assert "hourly 3 quarter 4 job 3" in out, out

    history = lk.json_lines("history", "latest")
    assert _ticks(history, "hourly@app.py:") == [at(1), at(2)]
    assert _job_runs(history) == [[1], [2], [3]], "one run of the Work per tick"
    assert _ticks(history, "quarter") == [at(0, 15), at(1), at(2)]
    started = [e["body"]["at"] for e in history if e["type"] == "flow.schedule_started"]
    assert started == [at(0, 10), at(0, 10)], "ticks count from when the schedules were first hit"
    # each tick was consumed by the iteration that ran on it, which that iteration's events say
    for e in history:
        if e["type"] == "flow.schedule_ticked":
            consumed = [
                c for c in history if c["type"] == "flow.schedule_consumed" and c["body"] == e["body"]
            ]
            assert len(consumed) == 1 and consumed[0]["input_seq"] >= e["seq"], e
    table = lk("history", "latest", check=True).stdout
    assert "root quarter at 2030-01-01 00:15:00" in table, table
    replay = lk("replay", "latest", check=True)
    assert replay.stdout.strip().endswith(": no difference"), replay.stdout


def test_resume_after_downtime_gives_one_catch_up_tick_then_the_cadence(lk: Any) -> None:
    clock = _fake_clock(lk, at(0, 10))
    run = Running(lk.popen("run", "app", lk.app(APP)))
    run.expect("hourly 1", "quarter 1", "job 1 done")
    run.proc.send_signal(signal.SIGTERM)
    run.finish()
    assert run.proc.returncode != 0
    assert run.proc.stderr is not None and "lightning-kernel resume" in run.proc.stderr.read()

    # five hours and twenty minutes down: twenty quarter ticks and five hourly ones were missed
    clock.write_text(repr(at(5, 30)))
    resumed = Running(lk.popen("resume", "latest"))
    resumed.expect("hourly 2", "quarter 2")
    clock.write_text(repr(at(6)))
    out = resumed.finish()
    assert resumed.proc.returncode == 0, out
    assert "hourly 3 quarter 3 job 3" in out, out
    history = lk.json_lines("history", "latest")
    assert _ticks(history, "hourly@app.py:") == [at(5), at(6)]
    assert _ticks(history, "quarter") == [at(5, 30), at(6)]
    replay = lk("replay", "latest", check=True)
    assert replay.stdout.strip().endswith(": no difference"), replay.stdout
