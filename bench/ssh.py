"""The SSH executor beside plain OpenSSH, in the same run, through `lightning-kernel run app`.

Sets up what the SSH tests use (``tests/_fixtures/sshd.py``, its fixtures called as context managers):
the test user ``lkssh`` with a venv of this tree, host "loop" (sshd on 127.0.0.1) and host "ns" (sshd in
a network namespace); all torn down at the end, on Ctrl-C or an error too. Needs root. Each round:

1. Worker start to ``running`` (``work.run_requested`` -> ``work.status_changed`` running, from
   ``history --json``): cold, a kernel's first Work on loop, with code the host has never unpacked (a
   fresh token in the app makes its code new to the test user's code cache, which test sessions
   running beside share: each run's entry is removed afterwards, not the whole cache); warm, a second
   Work on loop called once the first one's call ended (both start their workers at their first
   call, not with the flow, or the second one's would be up before it is called). Baseline:
   ``ssh loop '<python> -c "import lightning_kernel._worker"'``, fresh and through an open
   ControlMaster connection.
2. Call round trip: 30 trivial sequential calls of that second Work, from the flow's call until it
   passes it; baseline ``ssh loop true`` through the open ControlMaster connection.
3. A Path of random bytes, loop -> ns, with the default local store (through the kernel's relay):
   (A's ``succeeded`` ts - A's time right after writing) + (B's time first thing in run() - B's
   ``running`` ts). Baselines with A's file, right after: ``scp -3 loop:f ns:f`` (both legs at once,
   through this machine) and ``scp loop:f x; scp x ns:f`` (one after the other, as the kernel's store
   does), each scp with a fresh login.

Every Work's host is checked in the history (``work.worker_started`` ``ref.host``).

    python bench/ssh.py [--rounds 3] [--size-mb 200]

Medians over the rounds (round trips: over all calls; ratios: of each round's pair). Targets: warm
start <= 0.5 s, the Path at >= 80% of scp.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _fixtures import sshd

CALLS = 30
START_APP = """
import json, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute
# TOKEN

class Trivial(LightningWork):
    def __init__(self):  # its worker starts at its first call, not with the flow
        super().__init__(cloud_compute=CloudCompute("loop", executor="ssh"), start_with_flow=False)
    def run(self, i):
        pass

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.cold, self.warm = Trivial(), Trivial()
        self._i, self._t0, self._rt = 0, {}, []
    def run(self):
        self.cold.run(0)  # blocks this iteration until the call succeeded
        while self._i <= CALLS:  # call 0 starts the warm Work's worker
            self._t0.setdefault(self._i, time.perf_counter())
            self.warm.run(self._i)
            self._rt.append(time.perf_counter() - self._t0[self._i])
            self._i += 1
        print("RESULT", json.dumps(self._rt[1:]))
        self.stop()

app = LightningApp(Root())
"""
HANDOVER_APP = """
import json, os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute
from lightning_kernel.storage import Path

class Write(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("loop", executor="ssh"))
        self.out = Path("blob.bin")
        self.where, self.t = "", 0.0
    def run(self):
        data = os.urandom(SIZE)
        self.where = os.path.abspath(self.out)
        with open(self.out, "wb") as f:
            f.write(data)
        self.t = time.time()

class Read(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("ns", executor="ssh"))
        self.t, self.size = 0.0, 0
    def run(self, inp):
        self.t = time.time()
        self.size = os.path.getsize(inp)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.a, self.b = Write(), Read()
    def run(self):
        self.a.run()
        self.b.run(self.a.out)
        print("RESULT", json.dumps({"a": self.a.t, "b": self.b.t, "size": self.b.size, "file": self.a.where}))
        self.stop()

app = LightningApp(Root())
"""


@contextlib.contextmanager
def ssh_hosts(tmp: Path) -> Iterator[tuple[sshd.SshHost, sshd.SshHost]]:
    with contextlib.ExitStack() as stack:

        def fixture(fn: Any, *args: Any) -> Any:
            return stack.enter_context(contextlib.contextmanager(inspect.unwrap(fn))(*args))

        # What _ssh_base asks of pytest's tmp_path_factory.
        factory = SimpleNamespace(
            getbasetemp=lambda: tmp, mktemp=lambda name: Path(tempfile.mkdtemp(prefix=name, dir=tmp))
        )
        base = fixture(sshd._ssh_base, factory)
        # Ctrl-C reaches the whole process group: the daemons ignore it (SIG_IGN is inherited; their
        # sessions reset it), so that the teardown, which finds the hosts' processes through them, runs.
        default = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            hosts = fixture(sshd.ssh_host, base), fixture(sshd.ssh_ns_host, base)
        finally:
            signal.signal(signal.SIGINT, default)
        yield hosts


class Plain:
    """OpenSSH's own client, with an ssh_config naming the two hosts (scp -3 needs both in it)."""

    def __init__(self, tmp: Path, hosts: tuple[sshd.SshHost, ...]) -> None:
        self.config = tmp / "ssh_config"
        self.mux = ["-o", "ControlMaster=auto", "-o", f"ControlPath={tmp}/cm-%n", "-o", "ControlPersist=60"]
        lines = []
        for h in hosts:
            lines += [f"Host {h.name}", f"  HostName {h.host}", f"  Port {h.port}", f"  User {h.user}"]
            lines += [f"  IdentityFile {h.client_keys[0]}", f"  UserKnownHostsFile {h.known_hosts}"]
        lines += ["Host *", "  IdentitiesOnly yes", "  GlobalKnownHostsFile /dev/null", "  BatchMode yes"]
        self.config.write_text("\n".join([*lines, "  StrictHostKeyChecking yes", ""]))

    def timed(self, tool: str, *args: str, mux: bool = False) -> float:
        argv = [tool, "-F", str(self.config), *(self.mux if mux else ["-o", "ControlPath=none"]), *args]
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
        return time.perf_counter() - t0

    def close(self, host: str) -> None:
        argv = ["ssh", "-F", str(self.config), *self.mux, "-O", "exit", host]
        subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)


def bodies(events: list[dict[str, Any]], type_: str) -> Iterator[tuple[float, dict[str, Any]]]:
    return ((float(e["ts"]), e["body"]) for e in events if e["type"] == type_)


def run_app(tmp: Path, source: str, hosts: tuple[sshd.SshHost, ...]) -> tuple[Any, list[dict[str, Any]]]:
    """Runs ``source`` with the two hosts configured; its RESULT line and its history."""
    d = Path(tempfile.mkdtemp(dir=tmp))
    app = d / "app"  # the app's folder is its code: the data dir stays outside it
    app.mkdir()
    (app / "app.py").write_text(textwrap.dedent(source))
    inspect.unwrap(sshd.ssh_config_file)(app)(*hosts)
    env = {**os.environ, "LK_DATA_DIR": str(d / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a user's machine (see kernel_latency.py)

    def lk(*args: str) -> str:
        argv = [sys.executable, "-m", "lightning_kernel", *args]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=app, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"`lightning-kernel {' '.join(args)}` failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    try:
        line = next(x for x in lk("run", "app", "app.py").splitlines() if x.startswith("RESULT "))
        events = [json.loads(x) for x in lk("history", "latest", "--json").splitlines() if x.strip()]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    # The hosts share the test user's home: nothing of this run stays in its code cache, nor the
    # workers' folders (each is left with its pid file).
    home = Path(hosts[0].home)
    for _, body in bodies(events, "run.created"):
        shutil.rmtree(home / ".cache" / "lightning-kernel" / "code" / body["code"], ignore_errors=True)
    for _, body in bodies(events, "work.worker_started"):
        shutil.rmtree((home / body["ref"]["dir"].removeprefix("~/")).parent, ignore_errors=True)
    return json.loads(line[len("RESULT ") :]), events


def ts(events: list[dict[str, Any]], type_: str, work: str, stage: str | None = None) -> float:
    for t, body in bodies(events, type_):
        if body.get("work") == work and stage in (None, body.get("stage")):
            return t
    raise SystemExit(f"no {type_} {stage or ''} event of {work} in the run's history")


def check_hosts(events: list[dict[str, Any]], expected: dict[str, str]) -> None:
    started = {body["work"]: body["ref"]["host"] for _, body in bodies(events, "work.worker_started")}
    if started != expected:
        raise SystemExit(f"the Works did not run where asked: worker_started {started}, not {expected}")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def start_round(tmp: Path, hosts: tuple[sshd.SshHost, ...], plain: Plain) -> dict[str, Any]:
    loop = hosts[0]
    source = START_APP.replace("TOKEN", secrets.token_hex(8)).replace("CALLS", str(CALLS))
    rts, events = run_app(tmp, source, hosts)
    check_hosts(events, {"root.cold": "loop", "root.warm": "loop"})
    cold, warm = (
        ts(events, "work.status_changed", w, "running") - ts(events, "work.run_requested", w)
        for w in ("root.cold", "root.warm")
    )
    imports = f"{loop.python} -c 'import lightning_kernel._worker'"
    fresh = statistics.median(plain.timed("ssh", "loop", imports) for _ in range(5))
    try:
        plain.timed("ssh", "loop", "true", mux=True)  # opens the master connection
        muxed = statistics.median(plain.timed("ssh", "loop", imports, mux=True) for _ in range(5))
        true = [plain.timed("ssh", "loop", "true", mux=True) for _ in range(CALLS)]
    finally:
        plain.close("loop")
    return dict(cold=cold, warm=warm, fresh=fresh, muxed=muxed, rts=rts, true=true)


def handover_round(tmp: Path, hosts: tuple[sshd.SshHost, ...], plain: Plain, mb: int) -> dict[str, float]:
    loop, ns = hosts
    got, events = run_app(tmp, HANDOVER_APP.replace("SIZE", str(mb << 20)), hosts)
    check_hosts(events, {"root.a": "loop", "root.b": "ns"})
    if got["size"] != mb << 20:
        raise SystemExit(f"Work b on ns got {got['size']} bytes, not {mb << 20}")
    persist = ts(events, "work.status_changed", "root.a", "succeeded") - got["a"]
    transfer = got["b"] - ts(events, "work.status_changed", "root.b", "running")
    there, here = f"{ns.work_dir}/scp-copy", str(tmp / "scp-copy")
    try:
        three = plain.timed("scp", "-3", f"loop:{got['file']}", f"ns:{there}")
        hops = plain.timed("scp", f"loop:{got['file']}", here) + plain.timed("scp", here, f"ns:{there}")
    finally:
        for d in (loop.work_dir, ns.work_dir):  # the Works' folders, 200 MB each
            for child in Path(d).iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        Path(here).unlink(missing_ok=True)
    return dict(persist=persist, transfer=transfer, ours=persist + transfer, scp3=three, hops=hops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()
    mb = args.size_mb
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill unwinds the set-up too
    t0 = time.perf_counter()
    starts, hands = [], []
    with tempfile.TemporaryDirectory(prefix="lk-bench-ssh-") as d, ssh_hosts(Path(d)) as hosts:
        plain = Plain(Path(d), hosts)
        for r in range(args.rounds):
            starts.append(s := start_round(Path(d), hosts, plain))
            hands.append(h := handover_round(Path(d), hosts, plain, mb))
            print(
                f"round {r + 1}: start cold {s['cold']:.2f} s warm {s['warm']:.2f} s, call "
                f"{statistics.median(s['rts']) * 1000:.1f} ms; Path {mb / h['ours']:.0f} MB/s (persist "
                f"{h['persist']:.2f} s + transfer {h['transfer']:.2f} s), scp -3 {mb / h['scp3']:.0f} MB/s"
            )
    print(f"\n{args.rounds} rounds, {mb} MB, {time.perf_counter() - t0:.0f} s; medians")
    report(starts, hands, mb)


def report(starts: list[dict[str, Any]], hands: list[dict[str, float]], mb: int) -> None:
    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    rts = [v * 1000 for s in starts for v in s["rts"]]
    true = [v * 1000 for s in starts for v in s["true"]]
    # Per round: each baseline ran right after ours, on a machine that other work shares.
    of_scp3, of_hops = (statistics.median(h[k] / h["ours"] for h in hands) for k in ("scp3", "hops"))
    print(
        f"worker start -> running, cold: ours {med(starts, 'cold'):.2f} s | plain ssh (fresh login + the "
        f"worker's imports) {med(starts, 'fresh'):.2f} s (no target)\n"
        f"worker start -> running, warm: ours {med(starts, 'warm'):.2f} s | plain ssh (ControlMaster open + "
        f"the worker's imports) {med(starts, 'muxed'):.2f} s (target <= 0.5 s)\n"
        f"call round trip, trivial sequential Work on loop: ours median {statistics.median(rts):.1f} ms, "
        f"p90 {pct(rts, 90):.1f} ms ({len(rts)} calls) | plain ssh `true` through ControlMaster median "
        f"{statistics.median(true):.1f} ms, p90 {pct(true, 90):.1f} ms (no target)\n"
        f"{mb} MB Path loop -> ns, local store: ours {mb / med(hands, 'ours'):.0f} MB/s (persist "
        f"{med(hands, 'persist'):.2f} s + transfer {med(hands, 'transfer'):.2f} s) | plain ssh scp -3 "
        f"{mb / med(hands, 'scp3'):.0f} MB/s, two-hop scp {mb / med(hands, 'hops'):.0f} MB/s; ours "
        f"{of_scp3:.0%} of scp -3, {of_hops:.0%} of two-hop, per round (target >= 80% of scp)"
    )


if __name__ == "__main__":
    main()
