"""One owner per run, one recorder per database (issue 7, point 2), tried as its reporter did: real
nats-servers, real SQLite files and PostgreSQL databases, real ``lightning-kernel`` processes."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _guard
import psycopg
import pytest
from _guard import (
    COUNTER,
    NatsServer,
    kernel_file,
    kill_all,
    lease_holder,
    processes_with_env,
    runs_of,
    stream_events,
    wait_until,
    work_var,
)
from conftest import LK

pg_database = _guard.pg_database  # a fixture


def kernel(base: Path, name: str, **env: str) -> LK:
    folder = base / name
    folder.mkdir()
    lk = LK(folder)
    lk.env.update({"COUNT_FILE": str(folder / "count"), **env})
    return lk


def finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def history(lk: LK, run: str) -> list[dict[str, Any]]:
    return lk.json_lines("history", run)


def assert_recorded_exactly(lk: LK, run: str, stream: list[dict[str, Any]]) -> None:
    """The database of ``lk`` holds every event of ``run`` that the stream holds, each once, as sent."""
    recorded = history(lk, run)
    assert [e["seq"] for e in recorded] == [m["seq"] for m in stream], (
        f"run {run}: recorded seqs {[e['seq'] for e in recorded]} != stream seqs {[m['seq'] for m in stream]}"
    )
    assert [e["id"] for e in recorded] == [m["data"]["id"] for m in stream]
    assert recorded[0]["type"] == "run.created"


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    (tmp_path / "nats-store").mkdir()
    server = NatsServer(tmp_path / "nats-store").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[list[Path]]:
    """Data dirs whose processes are killed after the test, whatever it left."""
    dirs: list[Path] = []
    try:
        yield dirs
    finally:
        for d in dirs:
            kill_all(processes_with_env("LK_DATA_DIR", str(d)))


def live_nats(data_dir: Path, pid: int) -> dict[str, Any] | None:
    """The embedded NATS of the kernel ``pid`` in ``data_dir`` once it is up (a killed kernel leaves a
    stale ``kernel.json`` behind)."""
    try:
        live = kernel_file(data_dir)
    except (OSError, ValueError):
        return None
    return live if live.get("pid") == pid else None


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return list(conn.execute(sql).fetchall())


def test_two_databases_on_one_nats_each_record_their_own_runs_completely(tmp_path, nats):
    a = kernel(tmp_path, "a", **nats.env(), LK_DB=f"sqlite:///{tmp_path / 'a.db'}", STEPS="15")
    b = kernel(tmp_path, "b", **nats.env(), LK_DB=f"sqlite:///{tmp_path / 'b.db'}", STEPS="15")
    pa = a.popen("run", "app", a.app(COUNTER))
    pb = b.popen("run", "app", b.app(COUNTER))
    (ca, oa, ea), (cb, ob, eb) = finish(pa), finish(pb)
    assert (ca, cb) == (0, 0), f"a: {ea}\nb: {eb}"
    assert "counted to 15" in oa and "counted to 15" in ob

    [run_a], [run_b] = runs_of(a), runs_of(b)
    assert run_a["status"] == run_b["status"] == "succeeded" and run_a["id"] != run_b["id"]
    stream = stream_events(nats.url, nats.token)
    for lk, mine, theirs in ((a, run_a["id"], run_b["id"]), (b, run_b["id"], run_a["id"])):
        assert_recorded_exactly(lk, mine, [m for m in stream if m["subject"].split(".")[1] == mine])
        other = lk("history", theirs)
        assert other.returncode == 1 and f"no run {theirs!r}" in other.stderr, "a run of another database"


def test_second_data_dir_on_one_postgres_refuses_naming_both_streams(tmp_path, pg_database):
    first = kernel(tmp_path, "first", LK_DB=pg_database, STEPS="3")
    second = kernel(tmp_path, "second", LK_DB=pg_database, STEPS="3")
    ok = first("run", "app", first.app(COUNTER), check=True)
    assert "counted to 3" in ok.stdout
    before = history(first, "latest")
    runs_before = runs_of(first)
    bound = dict(pg_rows(pg_database, "select key, value from meta"))

    started = time.monotonic()
    refused = second("run", "app", second.app(COUNTER))
    took = time.monotonic() - started
    print(f"refused in {took:.2f} s")
    assert refused.returncode == 1, refused.stderr
    m = re.search(
        r"the database records the event stream (\w+) \(up to seq (\d+)\), but NATS holds another one, (\w+)",
        refused.stderr,
    )
    assert m, refused.stderr
    assert m.group(1) == bound["stream_id"] and int(m.group(2)) == before[-1]["seq"]
    assert m.group(3) != m.group(1)
    assert "adopt-stream" in refused.stderr and "Traceback" not in refused.stderr
    assert not (second.dir / "count").exists(), "no Work of the refused run ran"

    # Nothing half-recorded: the database holds the first run only, as it was.
    assert runs_of(first) == runs_of(second) == runs_before
    assert history(first, "latest") == before
    assert dict(pg_rows(pg_database, "select key, value from meta")) == bound
    # ...and the refused kernel published nothing into its own stream either (its store, read back).
    store = NatsServer(second.dir / "data" / "nats").start()
    try:
        assert stream_events(store.url, store.token) == []
    finally:
        store.stop()


def test_removed_jetstream_store_is_refused_naming_the_gap_and_adopt_stream_goes_on(lk):
    lk.env.update({"COUNT_FILE": str(lk.dir / "count"), "STEPS": "3"})
    app = lk.app(COUNTER)
    lk("run", "app", app, check=True)
    [old] = runs_of(lk)
    old_history = history(lk, old["id"])
    last = old_history[-1]["seq"]

    import shutil

    shutil.rmtree(lk.dir / "data" / "nats")
    refused = lk("run", "app", app)
    assert refused.returncode == 1
    assert f"(up to seq {last})" in refused.stderr and "but NATS holds another one" in refused.stderr
    assert "lightning-kernel db adopt-stream" in refused.stderr
    assert runs_of(lk) == [old], "nothing recorded from the refused run"
    assert (lk.dir / "count").read_text().count("started") == 1

    adopted = lk("db", "adopt-stream")
    assert adopted.returncode == 0, adopted.stderr
    ran = lk("run", "app", app, check=True)
    assert "counted to 3" in ran.stdout
    new, again = runs_of(lk)
    assert again == old and new["status"] == "succeeded"
    new_history = history(lk, new["id"])
    assert new_history[0]["type"] == "run.created" and new_history[0]["seq"] > last, (
        "the new stream numbers on from what the database holds"
    )
    assert new_history[-1]["type"] == "run.ended"
    assert history(lk, old["id"]) == old_history, "past runs stay readable"
    assert lk("state", old["id"], "--json", check=True)


def test_resume_of_a_run_another_kernel_drives_is_refused_naming_it(tmp_path, nats, leftovers):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    hold = tmp_path / "hold"
    hold.touch()
    a = kernel(tmp_path, "a", **nats.env(), LK_DB=db, HOLD=str(hold), STEPS="5")
    b = kernel(tmp_path, "b", **nats.env(), LK_DB=db)
    b.env["COUNT_FILE"] = a.env["COUNT_FILE"]
    leftovers.extend([a.dir / "data", b.dir / "data"])
    pa = a.popen("run", "app", a.app(COUNTER))
    try:
        wait_until("the Work counts", lambda: (work_var(a, "root.w", "n") or 0) >= 2, timeout=60, proc=pa)
        run_id = runs_of(a)[0]["id"]
        started = time.monotonic()
        refused = b("resume", run_id, timeout=60)
        print(f"resume refused in {time.monotonic() - started:.2f} s")
        assert refused.returncode == 1, refused.stderr
        assert (
            f"run {run_id} is held by the kernel pid {pa.pid} on host {socket.gethostname()}"
            in refused.stderr
        )
        assert str(a.dir / "data") in refused.stderr and "Traceback" not in refused.stderr
        hold.unlink()
        code, out, err = finish(pa)
    finally:
        if pa.poll() is None:
            pa.kill()
    assert code == 0, err
    assert "counted to 5" in out
    assert (a.dir / "count").read_text().count("started") == 1, "the Work ran once"
    events = history(a, run_id)
    assert [e["type"] for e in events].count("work.worker_started") == 1
    assert "run.resumed" not in [e["type"] for e in events]


def test_stop_of_a_run_another_kernel_drives_asks_it_and_starts_no_kernel(tmp_path, nats, leftovers):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    hold = tmp_path / "hold"
    hold.touch()
    a = kernel(tmp_path, "a", **nats.env(), LK_DB=db, HOLD=str(hold))
    b = kernel(tmp_path, "b", **nats.env(), LK_DB=db)
    leftovers.extend([a.dir / "data", b.dir / "data"])
    pa = a.popen("run", "app", a.app(COUNTER))
    try:
        wait_until("the Work counts", lambda: (work_var(a, "root.w", "n") or 0) >= 2, timeout=60, proc=pa)
        run_id = runs_of(a)[0]["id"]
        started = time.monotonic()
        stopped = b("stop", run_id, timeout=60)
        took = time.monotonic() - started
        print(f"stop answered in {took:.2f} s")
        assert stopped.returncode == 0, stopped.stderr
        assert f"asked the kernel pid {pa.pid} on host {socket.gethostname()}" in stopped.stderr
        assert f"run {run_id} stopped" in stopped.stderr
        assert took < 20
        code, _, err = finish(pa, timeout=30)
    finally:
        if pa.poll() is None:
            pa.kill()
    assert code == 0, err
    [run] = runs_of(a)
    assert run["status"] == "stopped" and "lightning-kernel stop" in run["message"]
    # No second kernel: `stop` neither made a data dir (a kernel's first act) nor drove the run.
    assert not (b.dir / "data").exists()
    events = history(a, run_id)
    types = [e["type"] for e in events]
    assert types.count("work.worker_started") == 1 and "run.resumed" not in types
    assert types[-1] == "run.ended" and [
        e["source"] for e in events if e["type"] == "run.stop_requested"
    ] == ["cli"]
    assert (a.dir / "count").read_text().count("started") == 1


def test_resume_latest_right_after_kill_9_always_sees_the_run(lk, leftovers):
    hold = lk.dir / "hold"
    hold.touch()
    lk.env.update({"COUNT_FILE": str(lk.dir / "count"), "HOLD": str(hold), "STEPS": "3"})
    leftovers.append(lk.dir / "data")
    proc = lk.popen("run", "app", lk.app(COUNTER))
    resumes = 10
    run_id = ""
    for i in range(resumes + 1):
        # Kill -9 as soon as the command's events are in the stream, before the database need have them.
        wanted = "run.created" if i == 0 else "run.resumed"

        def published(
            proc: subprocess.Popen[str] = proc, wanted: str = wanted, n: int = max(i, 1)
        ) -> list[dict[str, Any]] | None:
            if proc.poll() is not None:
                raise AssertionError(f"exited early ({proc.returncode}): {proc.communicate()}")
            nats = live_nats(lk.dir / "data", proc.pid)
            if nats is None:
                return None
            try:
                msgs = stream_events(nats["nats"], nats["token"])
            except Exception:
                return None
            seen = [m for m in msgs if m["data"] and m["data"]["type"] == wanted]
            return seen if len(seen) >= n else None

        seen = wait_until(f"{wanted} in the stream", published, timeout=60, every=0.05)
        if i == 0:
            run_id = seen[0]["data"]["run"]
        else:
            assert len(seen) == i
        time.sleep(0.1 * (i % 3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if i == resumes:
            break
        proc = lk.popen("resume", "latest")
    # The last one: carry on to the end.
    hold.unlink()
    done = lk("resume", "latest", timeout=90)
    assert done.returncode == 0, done.stderr
    assert f"resuming run {run_id}" in done.stderr and "counted to 3" in done.stdout
    [run] = runs_of(lk)
    assert run["id"] == run_id and run["status"] == "succeeded"
    types = [e["type"] for e in history(lk, run_id)]
    assert types.count("run.resumed") == resumes + 1


def test_two_kernels_on_one_postgres_and_one_nats_record_everything_once(
    tmp_path, nats, pg_database, leftovers
):
    env = {**nats.env(), "LK_DB": pg_database, "LK_LEASE_S": "3", "STEPS": "20"}
    hold_a, hold_b = tmp_path / "hold-a", tmp_path / "hold-b"
    hold_a.touch()
    hold_b.touch()
    a = kernel(tmp_path, "a", **env, HOLD=str(hold_a))
    b = kernel(tmp_path, "b", **env, HOLD=str(hold_b))
    leftovers.extend([a.dir / "data", b.dir / "data"])
    pa = a.popen("run", "app", a.app(COUNTER))
    pb: subprocess.Popen[str] | None = None
    try:
        run_a = wait_until(
            "a's run recorded", lambda: runs_of(a) and runs_of(a)[0]["id"], timeout=60, proc=pa
        )
        wait_until(
            "a's Work counts", lambda: (work_var(a, "root.w", "n", run_a) or 0) >= 3, timeout=60, proc=pa
        )
        db_id = dict(pg_rows(pg_database, "select key, value from meta"))["db_id"]
        key = f"recorder.{db_id}"
        assert (lease_holder(nats.url, nats.token, key) or {}).get("pid") == pa.pid, "a records"
        pb = b.popen("run", "app", b.app(COUNTER))
        run_b = wait_until(
            "b's run recorded (by a)",
            lambda: next((r["id"] for r in runs_of(b) if r["id"] != run_a), None),
            timeout=60,
        )
        wait_until(
            "b's Work counts", lambda: (work_var(b, "root.w", "n", run_b) or 0) >= 3, timeout=60, proc=pb
        )
        assert (lease_holder(nats.url, nats.token, key) or {}).get("pid") == pa.pid, "b stands by"
        # Kill -9 the recording kernel: b takes over and records the rest, its own run's and a's.
        pa.send_signal(signal.SIGKILL)
        pa.communicate(timeout=30)
        killed_at = time.monotonic()
        wait_until(
            "b records",
            lambda: (lease_holder(nats.url, nats.token, key) or {}).get("pid") == pb.pid,
            timeout=30,
        )
        print(f"b took over recording {time.monotonic() - killed_at:.1f} s after a was killed")
        wait_until("b's Work done", lambda: work_var(b, "root.w", "n", run_b) == 20, timeout=60)
        hold_b.unlink()
        code, out, err = finish(pb, timeout=120)
        assert code == 0, err
        assert "counted to 20" in out
    finally:
        for p in (pa, pb):
            if p is not None and p.poll() is None:
                p.kill()
    stream = stream_events(nats.url, nats.token)
    for run in (run_a, run_b):
        assert_recorded_exactly(b, run, [m for m in stream if m["subject"].split(".")[1] == run])
    ids = pg_rows(pg_database, "select count(*), count(distinct id), count(distinct seq) from events")
    assert ids[0][0] == ids[0][1] == ids[0][2] == len(stream), "every event once"
    statuses = {r["id"]: r["status"] for r in runs_of(b)}
    assert statuses[run_b] == "succeeded" and statuses[run_a] == "running"

    # a's run resumes from the database b kept recording, and ends recorded completely.
    hold_a.unlink()
    resumed = a("resume", run_a, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "counted to 20" in resumed.stdout
    stream = stream_events(nats.url, nats.token)
    assert_recorded_exactly(a, run_a, [m for m in stream if m["subject"].split(".")[1] == run_a])
    assert {r["id"]: r["status"] for r in runs_of(a)}[run_a] == "succeeded"
    assert json.loads(a("state", run_a, "--json", check=True).stdout)["root"]["works"]["w"]["vars"]["n"] == 20


TICKS = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Counter(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.n = 0
    def run(self):
        while os.path.exists(os.environ["HOLD"]):
            time.sleep(0.05)
            self.n += 1

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Counter()
        self.ticks = 0
    def run(self):
        self.w.run()
        self.ticks = max(self.ticks, self.w.n // 5)
        if self.w.has_succeeded:
            self.stop(f"ticked to {self.ticks}")

app = LightningApp(Root())
"""


def pause_inside_a_write(proc: subprocess.Popen[str], database: str, timeout: float = 30) -> None:
    """SIGSTOP ``proc`` (a kernel) while it holds a PostgreSQL transaction that has written: its row
    locks stay taken as long as it is frozen, unless the server ends that transaction."""
    name = f"lightning-kernel pid {proc.pid}"
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND backend_xid IS NOT NULL"
    deadline = time.monotonic() + timeout
    with psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as db:
        while time.monotonic() < deadline:
            if db.execute(query, (name,)).fetchone()[0]:  # type: ignore[index]
                proc.send_signal(signal.SIGSTOP)
                if db.execute(query, (name,)).fetchone()[0]:  # type: ignore[index]
                    return
                proc.send_signal(signal.SIGCONT)  # it committed in between: again
    raise AssertionError(f"{name} was never caught inside a write transaction in {timeout} s")


@pytest.mark.parametrize("where", ["anywhere", "inside-a-write"])
def test_a_kernel_paused_past_its_lease_publishes_nothing_once_another_drives_the_run(
    tmp_path, nats, pg_database, leftovers, where
):
    hold = tmp_path / "hold"
    hold.touch()
    env = {
        **nats.env(),
        "LK_DB": pg_database,
        "LK_ARTIFACTS": f"file://{tmp_path / 'artifacts'}",
        "LK_LEASE_S": "3",
        "HOLD": str(hold),
    }
    a, b = kernel(tmp_path, "a", **env), kernel(tmp_path, "b", **env)
    leftovers.extend([a.dir / "data", b.dir / "data"])
    pa = a.popen("run", "app", a.app(TICKS))
    pb: subprocess.Popen[str] | None = None
    try:
        wait_until("the Work counts", lambda: (work_var(a, "root.w", "n") or 0) >= 10, proc=pa)
        run_id = runs_of(a)[0]["id"]
        if where == "anywhere":
            pa.send_signal(signal.SIGSTOP)  # frozen: it renews nothing, and does not know it
        else:
            pause_inside_a_write(pa, pg_database)  # frozen with row locks that b must take
        wait_until(
            "the lease lapses",
            lambda: lease_holder(nats.url, nats.token, f"run.{run_id}") is None,
            timeout=30,
        )
        pb = b.popen("resume", run_id)
        seen = work_var(b, "root.w", "n") or 0
        wait_until("b drives the run", lambda: (work_var(b, "root.w", "n") or 0) > seen + 10, proc=pb)
        pa.send_signal(signal.SIGCONT)  # it wakes up with a flow that has events to react to
        code, _, err = finish(pa, timeout=30)
        print(f"a: exit {code}: {err.strip()[-300:]}")
        assert code == 3, err
        assert f"run {run_id} interrupted: this kernel " in err and "Traceback" not in err
        now = work_var(b, "root.w", "n") or 0
        wait_until("b goes on", lambda: (work_var(b, "root.w", "n") or 0) > now + 10, proc=pb)
        hold.unlink()
        code, out, err = finish(pb)
        assert code == 0, err
        assert "ticked to" in out
    finally:
        for p in (pa, pb):
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                p.kill()
    events = history(b, run_id)
    resumed = next(e["seq"] for e in events if e["type"] == "run.resumed")
    after = [e for e in events if e["seq"] > resumed and e["source"] == "kernel"]
    ticks = [e["body"]["changes"]["root"]["ticks"] for e in events if e["type"] == "flow.state_changed"]
    assert ticks == sorted(set(ticks)), f"two kernels drove the run: flow changes {ticks}"
    assert "run.interrupted" not in [e["type"] for e in after]
    assert [e["type"] for e in events].count("run.resumed") == 1 and events[-1]["type"] == "run.ended"
