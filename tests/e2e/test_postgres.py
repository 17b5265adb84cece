"""The same kernel on PostgreSQL: a run, its history, and a resume after kill -9."""

from __future__ import annotations

import signal
from pathlib import Path

from test_resume import APP, wait_for_step

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_counter_app_on_postgres(lk_factory, pg_url):
    lk = lk_factory(pg_url)
    proc = lk("run", "app", lk.app((EXAMPLES / "counter.py").read_text()), check=True)
    assert "done" in proc.stdout
    runs = lk.json_lines("runs")
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    history = lk.json_lines("history", "latest")
    assert history[0]["type"] == "run.created" and history[-1]["type"] == "run.ended"
    assert lk.state()["root"]["works"]["w_1"]["vars"]["counter"] >= 5


def test_kill_9_and_resume_on_postgres(lk_factory, pg_url):
    lk = lk_factory(pg_url)
    proc = lk.popen("run", "app", lk.app(APP))
    wait_for_step(lk, 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    resumed = lk("resume", "latest", check=True, timeout=60)
    assert "quick ran 1x" in resumed.stdout and "in 2 launches" in resumed.stdout
