"""Helpers for the tests of a guarded kernel (ownership, faults, bad input): a nats-server this test
starts, kills and restarts on the same port and store, the stream read directly, polling with a
deadline, and a scan of /proc for what is left of a run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from _fixtures._ports import free_port
from lightning_kernel._natsserver import find_nats_server

T = TypeVar("T")

COUNTER = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Counter(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.n = 0
    def run(self):
        with open(os.environ["COUNT_FILE"], "a") as f:
            f.write("started\\n")
        while self.n < int(os.environ.get("STEPS", "10")) or os.path.exists(os.environ.get("HOLD", "/nonexistent")):
            time.sleep(0.1)
            if self.n < int(os.environ.get("STEPS", "10")):
                self.n += 1

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Counter()
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            self.stop(f"counted to {self.w.n}")

app = LightningApp(Root())
"""


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A PostgreSQL database of its own, dropped afterwards."""
    name = f"lk_test_{secrets.token_hex(5)}"
    admin = psycopg.connect(pg_server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


class NatsServer:
    """A real nats-server with JetStream and a token, on a fixed port and store dir, so that it can be
    killed and started again as the same server."""

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.token = secrets.token_hex(12)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 15) -> NatsServer:
        conf = self.store_dir.parent / f"nats-{self.port}.conf"
        conf.write_text(f'authorization {{ token: "{self.token}" }}\nmax_payload: 8MB\n')
        cmd = [find_nats_server(), "-c", str(conf), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, "-sd", str(self.store_dir)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        seen = []
        for line in self.proc.stderr:
            seen.append(line)
            if "Server is ready" in line:
                break
            if time.monotonic() > deadline:
                break
        else:
            raise AssertionError(f"nats-server did not start: {''.join(seen)}")
        if "Server is ready" not in seen[-1]:
            raise AssertionError(f"nats-server did not start: {''.join(seen)}")
        # Keep its stderr drained so it never blocks on a full pipe.
        import threading

        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def env(self) -> dict[str, str]:
        return {"LK_NATS": self.url, "LK_NATS_TOKEN": self.token}


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 60,
    every: float = 0.2,
    proc: subprocess.Popen[str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` s, or
    at once, with its output, when ``proc`` (the kernel being watched) exits meanwhile."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{what}: the kernel exited with {proc.returncode}:\n{out}\n{err}")
        time.sleep(every)
    if proc is not None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"{what}: not after {timeout} s (last: {last!r}); the kernel said:\n{out}\n{err}"
        )
    raise AssertionError(f"{what}: not after {timeout} s (last: {last!r})")


def runs_of(lk: Any) -> list[dict[str, Any]]:
    proc = lk("runs", "--json")
    if proc.returncode != 0:
        return []
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def state_of(lk: Any, run: str = "latest") -> dict[str, Any] | None:
    proc = lk("state", run, "--json")
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def work_var(lk: Any, work: str, var: str, run: str = "latest") -> Any:
    s = state_of(lk, run)
    if not s:
        return None
    node = s["root"]
    for part in work.split(".")[1:]:
        node = node["works"].get(part) or node["flows"][part]
    return node["vars"].get(var)


def processes_with_env(key: str, value: str) -> list[tuple[int, str]]:
    """``(pid, cmdline)`` of every live process whose environment has ``key=value``: what a kernel
    started with ``LK_DATA_DIR`` set (its nats-server, forkserver and workers inherit it)."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie is dead, only not reaped yet
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if needle in env:
            found.append((int(entry), cmd))
    return found


def kill_all(pids: list[tuple[int, str]]) -> None:
    for pid, _ in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stream_events(url: str, token: str | None, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every message of the ``LK`` stream (of ``run_id``'s subjects), read straight from NATS:
    ``{"seq", "subject", "data"}`` with ``data`` the decoded JSON (None when it is not JSON)."""

    async def main() -> list[dict[str, Any]]:
        import nats

        nc = await nats.connect(url, token=token, connect_timeout=5, allow_reconnect=False)
        try:
            js = nc.jetstream()
            info = await js.stream_info("LK")
            out = []
            subject = f"lk.{run_id}.>" if run_id else "lk.>"
            sub = await js.subscribe(subject, ordered_consumer=True)
            last = info.state.last_seq
            try:
                while out == [] or out[-1]["seq"] < last:
                    try:
                        msg = await sub.next_msg(timeout=2)
                    except Exception:
                        break
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        data = None
                    out.append({"seq": msg.metadata.sequence.stream, "subject": msg.subject, "data": data})
                    if msg.metadata.num_pending == 0:
                        break
            finally:
                await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    return asyncio.run(main())


def publish_raw(url: str, token: str | None, subject: str, payload: bytes) -> int:
    """Publish ``payload`` on ``subject`` into JetStream as a foreign client would; its stream seq."""

    async def main() -> int:
        import nats

        nc = await nats.connect(url, token=token, connect_timeout=5, allow_reconnect=False)
        try:
            ack = await nc.jetstream().publish(subject, payload)
            return int(ack.seq)
        finally:
            await nc.close()

    return asyncio.run(main())


def kernel_file(data_dir: Path) -> dict[str, Any]:
    """The embedded NATS of a kernel up in ``data_dir`` (``kernel.json``: url, token, pid)."""
    return dict(json.loads((data_dir / "kernel.json").read_text()))


def lease_holder(url: str, token: str | None, key: str) -> dict[str, Any] | None:
    """The holder (decoded JSON) of lease ``key`` in the kernel's KV bucket, None when nobody holds it."""

    async def main() -> dict[str, Any] | None:
        import nats
        import nats.js.errors

        nc = await nats.connect(url, token=token, connect_timeout=5, allow_reconnect=False)
        try:
            kv = await nc.jetstream().key_value("lk_leases")
            try:
                entry = await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None
            return dict(json.loads(entry.value or b"{}"))
        finally:
            await nc.close()

    return asyncio.run(main())
