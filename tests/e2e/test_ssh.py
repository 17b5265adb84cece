"""Works on SSH hosts, through the real ``lightning-kernel`` command: a real sshd on loopback and one
in a network namespace (its own address), a test user that cannot read the kernel's data dir, its own
Python with lightning-kernel installed. Nothing of the kernel's machine reaches the hosts but SSH."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import pytest

pytestmark = pytest.mark.slow

HANDOVER = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute
from lightning_kernel.storage import Path

class Make(LightningWork):
    def __init__(self):
        super().__init__()
        self.out = Path("made.txt")
    def run(self):
        with open(self.out, "w") as f:
            f.write("local\\n")

class Add(LightningWork):
    def __init__(self, host):
        super().__init__(cloud_compute=CloudCompute(host, executor="ssh"))
        self.out = Path(f"{host}.txt")
        self.uid = -1
        self.home = ""
    def run(self, inp):
        text = open(inp).read()
        self.uid, self.home = os.getuid(), os.path.expanduser("~")
        print("on", os.getcwd(), "read", text.strip().replace("\\n", ","))
        with open(self.out, "w") as f:
            f.write(text + f"{self.out.name}\\n")

class Read(LightningWork):
    def __init__(self):
        super().__init__()
        self.text = ""
    def run(self, inp):
        self.text = open(inp).read()

class Root(LightningFlow):
    def __init__(self, hosts):
        super().__init__()
        self.make = Make()
        self._hops = [Add(h) for h in hosts]
        for i, w in enumerate(self._hops):
            setattr(self, f"hop{i}", w)
        self.read = Read()
    def run(self):
        self.make.run()
        prev = self.make
        for w in self._hops:
            if not prev.has_succeeded:
                return
            w.run(prev.out)
            prev = w
        if prev.has_succeeded:
            self.read.run(prev.out)
        if self.read.has_succeeded:
            print("FINAL", self.read.text.replace("\\n", ","))
            self.stop()

app = LightningApp(Root(HOSTS))
"""

TICKER = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

class Ticker(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("HOST", executor="ssh"), parallel=True)
        self.n = 0
        self.pids = []
    def run(self, ticks):
        self.pids = self.pids + [os.getpid()]
        for i in range(ticks):
            self.n = i + 1
            print("tick", self.n, flush=True)
            time.sleep(0.25)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Ticker()
    def run(self):
        self.w.run(TICKS)
        if self.w.has_succeeded:
            print("DONE", self.w.n, self.w.pids)
            self.stop()

app = LightningApp(Root())
"""


def _config(ssh_config_file: Any, lk: Any, *hosts: Any, **overrides: Any) -> None:
    entries = [h.config(**overrides) if hasattr(h, "config") else h for h in hosts]
    ssh_config_file(*entries, path=lk.dir / "lightning-kernel.toml")


def _wait_for_line(proc: subprocess.Popen[str], marker: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(
        f"the run ended before printing {marker!r}:\n{''.join(seen)}\n{proc.stderr.read() if proc.stderr else ''}"
    )


@pytest.mark.parametrize("ns_first", [False, True], ids=["loop-then-ns", "ns-then-loop"])
def test_a_path_goes_local_to_remote_to_another_remote_and_back_with_no_s3(
    lk: Any, ssh_host: Any, ssh_ns_host: Any, ssh_config_file: Any, ns_first: bool
) -> None:
    _config(ssh_config_file, lk, ssh_host, ssh_ns_host)
    first, second = (ssh_ns_host, ssh_host) if ns_first else (ssh_host, ssh_ns_host)
    app = lk.app(HANDOVER.replace("HOSTS", repr([first.name, second.name])))
    out = lk("run", "app", app, timeout=180, check=True)
    assert f"FINAL local,{first.name}.txt,{second.name}.txt," in out.stdout, out.stdout
    history = lk("history", "latest", "--json", check=True).stdout
    for host in (ssh_host, ssh_ns_host):
        assert json.dumps(host.home) in history, f"a Work ran as the test user on {host.name}"
    # The remote Works' prints reach `run app`, and `logs`.
    assert f"on {first.work_dir}" in out.stdout, out.stdout
    logs = lk("logs", "latest", "root.hop1", check=True).stdout
    assert "read local," in logs and second.work_dir in logs, logs
    ssh_host.wait_ps(lambda procs: not procs)
    ssh_ns_host.wait_ps(lambda procs: not procs)


def test_with_s3_artifacts_the_host_talks_to_s3_itself(
    lk: Any, ssh_host: Any, ssh_config_file: Any, s3_server: Any
) -> None:
    _config(ssh_config_file, lk, ssh_host)
    bucket = s3_server.make_bucket()
    lk.env.update(
        LK_ARTIFACTS=f"s3://{bucket}/lk",
        LK_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    app = lk.app(HANDOVER.replace("HOSTS", repr([ssh_host.name])))
    out = lk("run", "app", app, timeout=180, check=True)
    assert f"FINAL local,{ssh_host.name}.txt," in out.stdout, out.stdout
    history = lk("history", "latest", "--json", check=True).stdout
    assert "lk-relay://" not in history, "with S3 the worker does not go through the kernel's relay"


def test_a_host_whose_key_does_not_match_is_refused(lk: Any, ssh_host: Any, ssh_config_file: Any) -> None:
    _config(ssh_config_file, lk, ssh_host, known_hosts=ssh_host.wrong_known_hosts)
    app = lk.app(HANDOVER.replace("HOSTS", repr([ssh_host.name])))
    out = lk("run", "app", app, timeout=120)
    assert out.returncode != 0
    assert "host key is not the one in" in out.stdout + out.stderr, out.stdout + out.stderr
    assert not ssh_host.ps(), "nothing ran on a host that could not be verified"
    hosts = lk("hosts")
    assert hosts.returncode == 1 and "FAILED" in hosts.stdout and "host key" in hosts.stdout, hosts.stdout


def test_a_host_with_another_version_fails_the_work_naming_both(
    lk: Any, ssh_host: Any, ssh_config_file: Any, ssh_wrong_version_python: str
) -> None:
    from lightning_kernel._version import __version__

    _config(ssh_config_file, lk, ssh_host, python=ssh_wrong_version_python)
    app = lk.app(HANDOVER.replace("HOSTS", repr([ssh_host.name])))
    out = lk("run", "app", app, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "0.0.0+other" in text and __version__ in text and ssh_host.name in text, text
    hosts = lk("hosts")
    assert hosts.returncode == 1 and "0.0.0+other" in hosts.stdout, hosts.stdout


def test_a_python_without_lightning_kernel_fails_the_work_saying_what_to_install(
    lk: Any, ssh_host: Any, ssh_config_file: Any
) -> None:
    _config(ssh_config_file, lk, ssh_host, python="/usr/bin/python3")
    app = lk.app(HANDOVER.replace("HOSTS", repr([ssh_host.name])))
    out = lk("run", "app", app, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "/usr/bin/python3 has no lightning-kernel" in text, text
    assert "pip install 'lightning-kernel==" in text and ssh_host.name in text, text


def test_hosts_says_what_each_host_is(lk: Any, ssh_host: Any, ssh_config_file: Any) -> None:
    from lightning_kernel._version import __version__

    _config(ssh_config_file, lk, ssh_host, cpus=None)
    out = lk("hosts", check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith(ssh_host.name))
    assert f"lightning-kernel {__version__}" in line and "cpus" in line, line
    # Two GPUs configured, none visible (no nvidia-smi here): said, as a warning.
    assert "warn" in line and "nvidia-smi" in line, line


def test_works_get_their_own_gpus_wait_when_none_is_free_and_fail_when_none_could_fit(
    lk: Any, ssh_host: Any, ssh_config_file: Any
) -> None:
    _config(ssh_config_file, lk, ssh_host, gpus=2, labels=["gpu"])
    app = lk.app(
        """
        import os, time
        from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

        class G(LightningWork):
            def __init__(self, gpus=1):
                super().__init__(cloud_compute=CloudCompute("gpu", executor="ssh", resources={"gpus": gpus}), parallel=True)
                self.cuda = None
                self.release = False
            def run(self):
                self.cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
                print("cuda", self.cuda, flush=True)
                time.sleep(1.5)

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.a, self.b, self.c = G(), G(), G()
                self.seen_pending = ""
            def run(self):
                for w in (self.a, self.b, self.c):
                    w.run()
                for w in (self.a, self.b, self.c):
                    if w.status.stage == "pending" and "waiting for an SSH host" in (w.status.message or ""):
                        self.seen_pending = w.status.message
                if all(w.has_succeeded for w in (self.a, self.b, self.c)):
                    print("GPUS", sorted([self.a.cuda, self.b.cuda, self.c.cuda]))
                    print("PENDING", self.seen_pending)
                    self.stop()

        app = LightningApp(Root())
        """
    )
    out = lk("run", "app", app, timeout=180, check=True)
    gpus_line = next(line for line in out.stdout.splitlines() if line.startswith("GPUS"))
    got = eval(gpus_line[len("GPUS ") :])
    assert set(got) <= {"0", "1"} and got.count("0") >= 1 and got.count("1") >= 1, got
    pending = next(line for line in out.stdout.splitlines() if line.startswith("PENDING"))
    assert "waiting for an SSH host with 1 cpus and 1 gpus free" in pending, pending

    too_big = lk.app(
        """
        from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

        class G(LightningWork):
            def __init__(self):
                super().__init__(cloud_compute=CloudCompute("gpu", executor="ssh", resources={"gpus": 8}))
            def run(self):
                pass

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.g = G()
            def run(self):
                self.g.run()

        app = LightningApp(Root())
        """,
        name="big.py",
    )
    out = lk("run", "app", too_big, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "asks for 1 cpus and 8 gpus" in text and f"{ssh_host.name} (cpus 4, gpus 2" in text, text


def test_setup_runs_once_per_kernel_start_and_its_output_is_in_the_works_logs(
    lk: Any, ssh_host: Any, ssh_config_file: Any
) -> None:
    _config(ssh_config_file, lk, ssh_host, setup=["echo setting up; echo ran >> setup-count.txt"])
    ssh_host.run("rm -f ~/setup-count.txt")
    app = lk.app(TICKER.replace("HOST", ssh_host.name).replace("TICKS", "1"))
    lk("run", "app", app, timeout=120, check=True)
    logs = lk("logs", "latest", "root.w", check=True).stdout
    assert "setting up" in logs, logs
    assert ssh_host.run("cat ~/setup-count.txt").stdout.split() == ["ran"]

    _config(ssh_config_file, lk, ssh_host, setup=["echo about to fail; exit 7"])
    out = lk("run", "app", app, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "exited with 7" in text and "about to fail" in text, text


def test_a_cut_connection_is_taken_back_and_the_work_goes_on(
    lk: Any, ssh_host: Any, ssh_config_file: Any
) -> None:
    _config(ssh_config_file, lk, ssh_host)
    app = lk.app(TICKER.replace("HOST", ssh_host.name).replace("TICKS", "16"))
    proc = lk.popen("run", "app", app)
    seen: list[str] = []
    _wait_for_line(proc, "tick 3", seen)
    assert ssh_host.kill_session(), "the kernel's connection to the host was cut"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(seen) + out + err
    done = next(line for line in out.splitlines() if line.startswith("DONE"))
    n, pids = done.split(" ", 2)[1:]
    assert n == "16" and len(json.loads(pids)) == 1, done
    ssh_host.wait_ps(lambda procs: not procs)


def test_a_link_that_stays_down_loses_the_work_and_nothing_is_left_on_the_host(
    lk: Any, ssh_ns_host: Any, ssh_config_file: Any
) -> None:
    _config(ssh_config_file, lk, ssh_ns_host)
    lk.env["LK_LEASE_S"] = "4"
    app = lk.app(TICKER.replace("HOST", ssh_ns_host.name).replace("TICKS", "400"))
    proc = lk.popen("run", "app", app)
    seen: list[str] = []
    try:
        _wait_for_line(proc, "tick 2", seen)
        ssh_ns_host.cut_link()
        # The worker is cut off from its kernel: it stops by itself once its lease lapses.
        ssh_ns_host.wait_ps(lambda procs: not procs, timeout=90)
        out, err = proc.communicate(timeout=120)
    finally:
        ssh_ns_host.restore_link()
        if proc.poll() is None:
            proc.kill()
    text = "".join(seen) + out + err
    assert proc.returncode != 0, text
    assert "connection" in text and ssh_ns_host.name in text and "lost" in text, text


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_nothing_is_left_on_the_host_when_the_kernel_goes(
    lk: Any, ssh_host: Any, ssh_config_file: Any, how: str
) -> None:
    _config(ssh_config_file, lk, ssh_host)
    lk.env["LK_LEASE_S"] = "4"
    app = lk.app(TICKER.replace("HOST", ssh_host.name).replace("TICKS", "400"))
    proc = lk.popen("run", "app", app)
    seen: list[str] = []
    _wait_for_line(proc, "tick 2", seen)
    assert ssh_host.ps(), "the worker runs on the host"
    proc.send_signal(getattr(signal, how))
    proc.communicate(timeout=60)
    # SIGINT (Ctrl-C), SIGTERM: the kernel stops the worker; SIGKILL: it stops once its lease lapses.
    ssh_host.wait_ps(lambda procs: not procs, timeout=60)


def test_kill_9_of_the_kernel_then_resume_reattaches_the_running_work(
    lk: Any, ssh_host: Any, ssh_config_file: Any
) -> None:
    _config(ssh_config_file, lk, ssh_host)
    app = lk.app(TICKER.replace("HOST", ssh_host.name).replace("TICKS", "24"))
    proc = lk.popen("run", "app", app)
    seen: list[str] = []
    _wait_for_line(proc, "tick 4", seen)
    proc.kill()
    proc.wait()
    out = lk("resume", "latest", timeout=120, check=True).stdout
    done = next(line for line in out.splitlines() if line.startswith("DONE"))
    n, pids = done.split(" ", 2)[1:]
    assert n == "24" and len(json.loads(pids)) == 1, f"one worker, never two: {done}"
    history = lk("history", "latest", check=True).stdout
    assert "re-attached" in history, history
    assert history.count("work.worker_started") == 2, history
    ssh_host.wait_ps(lambda procs: not procs)


def test_keys_from_the_agent(lk: Any, ssh_host: Any, ssh_config_file: Any, tmp_path: Any) -> None:
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.run(["ssh-agent", "-a", sock], capture_output=True, text=True, check=True)
    pid = int(agent.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        env = {**lk.env, "SSH_AUTH_SOCK": sock}
        subprocess.run(["ssh-add", ssh_host.client_keys[0]], env=env, capture_output=True, check=True)
        _config(ssh_config_file, lk, ssh_host, client_keys=None)
        lk.env["SSH_AUTH_SOCK"] = sock
        lk.env["HOME"] = str(tmp_path)  # no ~/.ssh/id_* to fall back on: the agent's key or nothing
        app = lk.app(TICKER.replace("HOST", ssh_host.name).replace("TICKS", "1"))
        out = lk("run", "app", app, timeout=120, check=True)
        assert "DONE 1" in out.stdout, out.stdout
    finally:
        os.kill(pid, signal.SIGTERM)


def test_work_stop_stops_the_remote_worker(lk: Any, ssh_host: Any, ssh_config_file: Any) -> None:
    _config(ssh_config_file, lk, ssh_host)
    app = lk.app(
        TICKER.replace("HOST", ssh_host.name)
        .replace("TICKS", "400")
        .replace(
            """        if self.w.has_succeeded:""",
            """        if self.w.n >= 3 and not self.w.has_stopped:
            self.w.stop()
        if self.w.has_stopped:
            print("STOPPED at", self.w.n)
            self.stop()
        if self.w.has_succeeded:""",
        )
    )
    out = lk("run", "app", app, timeout=120, check=True)
    assert "STOPPED at" in out.stdout, out.stdout
    ssh_host.wait_ps(lambda procs: not procs)


def test_ssh_without_hosts_says_how_to_configure_them(lk: Any) -> None:
    app = lk.app(TICKER.replace("HOST", "default").replace("TICKS", "1"))
    out = lk("run", "app", app, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "the ssh executor has no hosts: add [[executors.ssh.hosts]]" in text, text
    hosts = lk("hosts")
    assert hosts.returncode == 1 and "no SSH hosts configured" in hosts.stderr, hosts.stderr


def test_a_host_that_does_not_answer_is_passed_over_for_one_that_does(
    lk: Any, ssh_host: Any, ssh_config_file: Any
) -> None:
    from _fixtures._ports import free_port

    dead = ssh_host.config(name="dead", address=f"{ssh_host.user}@127.0.0.1:{free_port()}", labels=["pool"])
    _config(ssh_config_file, lk, dead, ssh_host.config(labels=["pool"]))
    app = lk.app(TICKER.replace('"HOST"', '"pool"').replace("TICKS", "1"))
    out = lk("run", "app", app, timeout=120, check=True)
    assert "DONE 1" in out.stdout, out.stdout
    history = lk("history", "latest", check=True).stdout
    assert f"host={ssh_host.name}" in history and "host=dead" not in history, history
