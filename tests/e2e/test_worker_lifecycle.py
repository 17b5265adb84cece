"""The worker lifecycle in the log, and a kernel killed at several moments: every worker is a numbered
attempt, never two copies of a Work run at once, and nothing of a run outlives its kernel."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
from _guard import processes_with_env, wait_until

ONE_AT_A_TIME = """
import fcntl, os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

LOCK = os.environ["LK_TEST_LOCK"]

class Steps(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.step = 0
        self.launches = 0
    def run(self):
        # Two copies of this Work at once would find the lock taken.
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(LOCK + ".overlap", "a") as f:
                f.write(f"{os.getpid()}\\n")
            raise
        self.launches += 1
        while self.step < 40:
            time.sleep(0.1)
            self.step += 1

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.steps = Steps()
    def run(self):
        self.steps.run()
        if self.steps.has_succeeded:
            self.stop(f"done in {self.steps.launches} launches")

app = LightningApp(Root())
"""


def _step(lk) -> int:
    out = lk("state", "latest", "--json")
    if out.returncode != 0:
        return -1
    return int(json.loads(out.stdout)["root"]["works"]["steps"]["vars"]["step"])


def _processes_of(data: Path) -> list[str]:
    """The live processes of the kernel that ran on ``data`` (they inherit its ``LK_DATA_DIR``)."""
    return [f"{pid}: {cmd[:120]}" for pid, cmd in processes_with_env("LK_DATA_DIR", str(data))]


@pytest.fixture
def one_at_a_time(lk, tmp_path: Path):
    lk.env["LK_TEST_LOCK"] = str(tmp_path / "steps.lock")
    return lk.app(ONE_AT_A_TIME), tmp_path / "steps.lock.overlap"


def test_the_log_records_each_worker_and_stamps_its_events(lk):
    app = lk.app(
        textwrap.dedent("""
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def __init__(self):
                super().__init__()
                self.x = 0
            def run(self):
                self.x = 1

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W()
            def run(self):
                self.w.run()
                if self.w.has_succeeded:
                    self.stop()

        app = LightningApp(Root())
    """)
    )
    lk("run", "app", app, check=True)
    events = lk.json_lines("history", "latest")
    started = [e for e in events if e["type"] == "work.worker_started"]
    exited = [e for e in events if e["type"] == "work.worker_exited"]
    assert [(e["body"]["work"], e["body"]["attempt"], e["body"]["executor"]) for e in started] == [
        ("root.w", 1, "local")
    ]
    assert set(started[0]["body"]["ref"]) == {"pid", "start"}
    assert [(e["body"]["attempt"], e["body"]["cause"]) for e in exited] == [(1, "killed")] or [
        (e["body"]["attempt"], e["body"]["cause"], e["body"]["code"]) for e in exited
    ] == [(1, "exited", 0)]
    from_worker = [e for e in events if e["source"] == "root.w"]
    assert from_worker and all(e["body"]["attempt"] == 1 for e in from_worker), from_worker
    assert events[-1]["type"] == "run.ended", "run.ended is the last event, after the workers' exits"
    words = lk("history", "latest", check=True).stdout
    assert "root.w worker 1 started (local, pid=" in words


def test_a_kernel_killed_mid_call_never_leaves_two_copies(lk, one_at_a_time):
    app, overlap = one_at_a_time
    proc = lk.popen("run", "app", app)
    wait_until("five steps", lambda: _step(lk) >= 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = lk("resume", "latest", check=True, timeout=120)
    assert "done in 2 launches" in resumed.stdout
    assert not overlap.exists(), f"two copies of the Work ran at once: {overlap.read_text()}"
    events = lk.json_lines("history", "latest")
    attempts = [(e["type"], e["body"]["attempt"]) for e in events if e["type"].startswith("work.worker_")]
    assert attempts[0] == ("work.worker_started", 1) and ("work.worker_started", 2) in attempts
    # The first attempt is over (exited, or fenced as lost) before the second starts.
    first_over = next(i for i, a in enumerate(attempts) if a[0] == "work.worker_exited" and a[1] == 1)
    assert first_over < attempts.index(("work.worker_started", 2))


@pytest.mark.parametrize("also", ["kernel", "kernel and forkserver"])
def test_nothing_of_a_run_outlives_a_kill_9(lk, one_at_a_time, tmp_path: Path, also):
    app, _ = one_at_a_time
    proc = lk.popen("run", "app", app)
    wait_until("three steps", lambda: _step(lk) >= 3)
    before = _processes_of(tmp_path / "data")
    assert len(before) >= 3, before  # the kernel, its nats-server, the forkserver, the worker
    proc.send_signal(signal.SIGKILL)
    if also != "kernel":
        for line in before:
            pid = int(line.split(":", 1)[0])
            if "forkserver" in line:
                os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    started = time.monotonic()
    wait_until("every process of the run to end", lambda: not _processes_of(tmp_path / "data"), timeout=30)
    print(f"everything gone {time.monotonic() - started:.1f} s after the kill")


BETWEEN = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork

MARK = os.environ["LK_TEST_MARK"]
SIZE = int(os.environ["LK_TEST_SIZE"])

class Producer(LightningWork):
    def __init__(self):
        super().__init__()
        self.data = "lit://big.bin"
    def run(self):
        with open(self.data, "wb") as f:
            for _ in range(SIZE // (1 << 20)):
                f.write(os.urandom(1 << 20))

class Consumer(LightningWork):
    def __init__(self):
        super().__init__()
        self.size = 0
    def run(self, data):
        with open(MARK, "a") as f:
            f.write(f"{os.getpid()}\\n")
        self.size = os.path.getsize(data)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.producer = Producer()
        self.consumer = Consumer()
    def run(self):
        self.producer.run()
        self.consumer.run(self.producer.data)
        if self.consumer.has_succeeded:
            self.stop(f"consumer saw {self.consumer.size} bytes")

app = LightningApp(Root())
"""


def test_a_call_between_its_command_and_run_never_runs_after_its_kernel_died(lk, tmp_path: Path):
    """Killed while the consumer's inputs are still being copied: its run() must not start then, and
    resume runs it once. The copy's length is grown until the kill lands inside it."""
    app = lk.app(BETWEEN)
    mark = tmp_path / "consumer.ran"
    lk.env["LK_TEST_MARK"] = str(mark)
    for size_mb in (64, 192, 384):
        mark.unlink(missing_ok=True)
        lk.env["LK_TEST_SIZE"] = str(size_mb << 20)
        proc = lk.popen("run", "app", app)

        def copying(works: Path = tmp_path / "data" / "works", proc=proc) -> bool:
            # The consumer's input arrives as a partial file in its folder, renamed when complete.
            partial = any(p.name.startswith(".lk-partial-") for p in works.glob("*/root.consumer/**/*"))
            return partial or proc.poll() is not None

        wait_until("the input to be copied", copying, timeout=120, every=0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_until("the run's processes to end", lambda: not _processes_of(tmp_path / "data"), timeout=30)
        if not mark.exists():
            break  # the kill landed between the command and run(), and run() never started
        lk("stop", "latest")
    else:
        pytest.fail("the kill never landed while the inputs were copied, even for 384 MB")
    resumed = lk("resume", "latest", check=True, timeout=180)
    assert f"consumer saw {size_mb << 20} bytes" in resumed.stdout
    assert len(mark.read_text().split()) == 1, "run() ran exactly once, after the resume"


EXECUTOR_PLUGIN = """
from lightning_kernel.executors import Executor, hookimpl
from lightning_kernel.executors.local import LocalExecutor


class Broken(Executor):
    name = "broken"

    async def start(self, spec):
        raise RuntimeError("no machine has 7 GPUs free")


class Elder(LocalExecutor):
    '''Starts workers that believe the kernel is another version.'''

    name = "elder"

    async def start(self, spec):
        spec.version = "0.0.1"
        return await super().start(spec)


class Slow(LocalExecutor):
    '''Takes seconds to start a worker, as a cloud machine does.'''

    name = "slow"

    async def start(self, spec):
        import asyncio

        await asyncio.sleep(3)
        return await super().start(spec)


@hookimpl
def lk_executors(config):
    seen = config.get("greeting", "")
    Broken.greeting = seen
    return [Broken(), Elder(), Slow()]
"""


@pytest.fixture
def plugin(lk, tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "lk_test_executors.py").write_text(EXECUTOR_PLUGIN)
    dist = site / "lk_test_executors-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lk-test-executors\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lightning_kernel.executors]\ntestexec = lk_test_executors\n")
    lk.env["PYTHONPATH"] = str(site) + os.pathsep + lk.env.get("PYTHONPATH", "")
    return lk


def _one_work_app(lk, executor: str) -> str:
    return lk.app(
        textwrap.dedent(f"""
        from lightning_kernel import CloudCompute, LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def run(self):
                print("ran")

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W(cloud_compute=CloudCompute("gpu", executor="{executor}"))
            def run(self):
                self.w.run()

        app = LightningApp(Root())
    """)
    )


def test_an_executor_that_cannot_start_a_worker_fails_the_work_with_its_message(plugin):
    proc = plugin("run", "app", _one_work_app(plugin, "broken"), timeout=60)
    assert proc.returncode == 1
    assert "executor 'broken' could not start a worker for root.w" in proc.stderr
    assert "no machine has 7 GPUs free" in proc.stderr


def test_a_worker_of_another_version_refuses_naming_both(plugin):
    from lightning_kernel._version import __version__

    proc = plugin("run", "app", _one_work_app(plugin, "elder"), timeout=60)
    assert proc.returncode == 1
    assert f"this host runs lightning-kernel {__version__}, the kernel runs 0.0.1" in proc.stderr
    assert "ran" not in proc.stdout


def test_an_unknown_executor_fails_the_work_naming_the_known_ones(lk):
    proc = lk("run", "app", _one_work_app(lk, "nope"), timeout=60)
    assert proc.returncode == 1
    assert "no executor named 'nope'" in proc.stderr and "'local'" in proc.stderr


def test_each_plugin_gets_its_own_table_of_the_config_file(plugin, tmp_path: Path):
    (tmp_path / "lightning-kernel.toml").write_text('[executors.testexec]\ngreeting = "hello"\n')
    from lightning_kernel._config import Config
    from lightning_kernel._plugins import load_executors

    cfg = Config.from_env(config_file=str(tmp_path / "lightning-kernel.toml"), data_dir=str(tmp_path / "d"))
    import sys

    sys.path.insert(0, str(tmp_path / "site"))
    try:
        executors = load_executors(tables=cfg.executors, data_dir=cfg.data_dir)
        assert type(executors.get("broken")).greeting == "hello"
        assert executors.get("local").work_dir == os.path.join(cfg.data_dir, "works")
    finally:
        sys.path.remove(str(tmp_path / "site"))
        sys.modules.pop("lk_test_executors", None)


def test_every_printed_line_is_recorded_before_the_run_says_it_ended(lk):
    app = lk.app(
        textwrap.dedent("""
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Loud(LightningWork):
            def run(self):
                for i in range(50_000):
                    print(f"line {i}")

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = Loud()
            def run(self):
                self.w.run()
                if self.w.has_succeeded:
                    self.stop()

        app = LightningApp(Root())
    """)
    )
    lk("run", "app", app, check=True, timeout=120)
    lines = lk("logs", "latest", "root.w", check=True).stdout.splitlines()
    assert len(lines) == 50_000 and lines[-1] == "line 49999"


def test_a_bad_config_file_is_a_clear_error(lk, tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[executors.ssh\nknown_hosts = 1\n")
    proc = lk("run", "app", _one_work_app(lk, "local"), "--config", str(bad))
    assert proc.returncode == 1 and f"config file {bad} cannot be read" in proc.stderr
    proc = lk("run", "app", _one_work_app(lk, "local"), "--config", str(tmp_path / "missing.toml"))
    assert proc.returncode == 1 and "does not exist (--config / LK_CONFIG)" in proc.stderr
    (tmp_path / "odd.toml").write_text("[kernel]\nx = 1\n")
    proc = lk("run", "app", _one_work_app(lk, "local"), "--config", str(tmp_path / "odd.toml"))
    assert proc.returncode == 1 and "unknown table(s) ['kernel']" in proc.stderr


def test_a_slow_start_holds_up_neither_the_flow_nor_other_works(plugin):
    app = plugin.app(
        textwrap.dedent("""
        from lightning_kernel import CloudCompute, LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def __init__(self, **kw):
                super().__init__(parallel=True, **kw)
                self.done = False
            def run(self):
                self.done = True

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.slow = W(cloud_compute=CloudCompute("cpu", executor="slow"))
                self.quick = W()
            def run(self):
                self.slow.run()
                self.quick.run()
                if self.slow.done and self.quick.done:
                    self.stop()

        app = LightningApp(Root())
    """)
    )
    plugin("run", "app", app, check=True, timeout=60)
    events = plugin.json_lines("history", "latest")

    def seq(kind: str, work: str, stage: str = "") -> int:
        return next(
            e["seq"]
            for e in events
            if e["type"] == kind and e["body"]["work"] == work and (not stage or e["body"]["stage"] == stage)
        )

    assert seq("work.status_changed", "root.quick", "succeeded") < seq("work.worker_started", "root.slow")


def test_a_root_run_that_blocks_past_the_lease_keeps_its_run(lk):
    """The flow runs on the kernel's event loop; its leases are renewed on a thread of their own, so
    a flow that blocks for longer than the lease neither loses its run nor has its Works stopped."""
    app = lk.app(
        textwrap.dedent("""
        import time
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def __init__(self):
                super().__init__(parallel=True)
                self.n = 0
            def run(self):
                for i in range(60):
                    self.n = i
                    time.sleep(0.1)

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W()
                self._slept = False
            def run(self):
                self.w.run()
                if self.w.n > 5 and not self._slept:
                    self._slept = True
                    time.sleep(7)  # more than twice the 3 s lease
                if self.w.has_succeeded:
                    self.stop("done")

        app = LightningApp(Root())
    """)
    )
    lk.env["LK_LEASE_S"] = "3"
    proc = lk("run", "app", app, timeout=120)
    assert proc.returncode == 0, proc.stderr
    calls = [e for e in lk.json_lines("history", "latest") if e["type"] == "work.status_changed"]
    assert [e["body"]["stage"] for e in calls] == ["running", "succeeded"], "the Work ran once, to its end"


def test_the_data_dir_is_private(lk, tmp_path: Path):
    """The data dir holds the tokens, the database and the pickled apps: 0700, and every file in it
    0600 (nothing readable, let alone writable, by another user)."""
    app = lk.app(
        textwrap.dedent("""
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def __init__(self):
                super().__init__()
                self.out = "lit://out.txt"
            def run(self):
                with open(self.out, "w") as f:
                    f.write("secret")

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W()
            def run(self):
                self.w.run()
                if self.w.has_succeeded:
                    self.stop()

        app = LightningApp(Root())
    """)
    )
    lk("run", "app", app, check=True, timeout=60)
    data = tmp_path / "data"
    assert (data.stat().st_mode & 0o777) == 0o700
    loose = []
    for path in data.rglob("*"):
        mode = path.stat().st_mode & 0o777
        if path.is_file() and mode & 0o077:
            loose.append(f"{path.relative_to(data)} {oct(mode)}")
        if path.is_dir() and mode & 0o077:
            loose.append(f"{path.relative_to(data)}/ {oct(mode)}")
    assert not loose, loose
    names = {p.name for p in data.iterdir()}
    assert {"kernel.db", "artifacts", "nats"} <= names
