"""Real OpenSSH servers for the SSH executor's tests, one per host per test session.

Two hosts, both running ``/usr/sbin/sshd -D -e -f CONFIG`` in the foreground:

- ``ssh_host`` ("loop"): sshd on 127.0.0.1 and a free port.
- ``ssh_ns_host`` ("ns"): sshd in a network namespace of its own, on 10.200.X.2:22, reached through
  a veth pair. ``cut_link()`` takes the namespace's end down, not the root's: the root's route stays
  and packets are dropped (with the root end down they would leave by the default route; a
  blackhole route for the subnet guards against that too). Only the network is separate:
  processes and files are shared, so ``ps`` and ``kill`` run here, as root.

Both log in a test user (``lkssh``, shell /bin/sh: root's shell start-up costs ~300 ms a command)
that cannot read root's folders, so not the kernel's data dirs under pytest's 0700 base temp: what
a Work on such a host gets, it got through the executor. Its Python is a virtualenv of
/usr/bin/python3 (a venv of root's Python under /root is not runnable by another user) with
lightning-kernel installed from a wheel of a copy of the working tree, not editable.

That venv is cached in the user's home in two layers, because installing the dependencies takes
~10 s and building the wheel ~2 s: ``deps-<hash of pyproject.toml>`` holds the dependencies (and
s3fs), ``lk-<hash of the package sources>`` holds lightning-kernel and reaches the dependencies
through a .pth file. An unchanged tree costs nothing, an edited one a wheel build.

A process belongs to the "ns" host when it lives in that host's network namespace, and to the
"loop" host when its ``SSH_CONNECTION`` names the loop sshd's port (or names none: a process that
cleared its environment cannot be told apart, and the loop host claims it). Zombies are left out:
pid 1 of a container need not reap the orphans of a killed session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from ._ports import free_port

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

USER = "lkssh"
SSHD = "/usr/sbin/sshd"
SYSTEM_PYTHON = "/usr/bin/python3"
ROOT = Path(__file__).resolve().parents[2]
OTHER_VERSION = "0.0.0+other"
_LOCK = Path(tempfile.gettempdir()) / "lightning-kernel-ssh.lock"
_SSHD_NAMES = ("sshd", "sshd-session", "sshd-auth")
_NS_PREFIX = "lk-ssh-"
_GUARD_METRIC = 4242


def _sh(*argv: str | Path, check: bool = True, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(map(str, argv))}` exited with {proc.returncode}:\n{proc.stderr.strip()}\n{proc.stdout.strip()}"
        )
    return proc


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One set-up at a time on this machine: user, venv cache, namespaces (sessions run side by side)."""
    with open(_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _wait(until: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout}s: {what()}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """False for a zombie too: pid 1 here need not reap the orphans of a killed session."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class UserProcess:
    pid: int
    pgid: int
    args: str


@dataclass(frozen=True, eq=False)
class SshHost:
    """One sshd and what a test needs to log in to it as the test user."""

    name: str
    address: str
    """``user@host:port``, as ``[[executors.ssh.hosts]]`` takes it."""
    host: str
    port: int
    user: str
    client_keys: list[str]
    known_hosts: str
    wrong_known_hosts: str
    """The same host with another key: a client must refuse it."""
    python: str
    home: str
    work_dir: str
    """A folder of the test user's, emptied at the end of the session."""
    log_path: str
    """sshd's stderr (LogLevel VERBOSE); its tail is added to the report of a failing test."""
    sshd_pid: int
    netns: str | None = None
    veth: str | None = None
    """The root side of the veth pair (the "ns" host only); its peer in the namespace ends in "n"."""
    labels: list[str] = field(default_factory=list)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """One ``[[executors.ssh.hosts]]`` entry; an override of None drops the field."""
        entry: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "client_keys": list(self.client_keys),
            "known_hosts": self.known_hosts,
            "python": self.python,
            "cpus": 4,
            "gpus": 2,
            "labels": list(self.labels),
            "work_dir": self.work_dir,
        }
        entry.update(overrides)
        return {k: v for k, v in entry.items() if v is not None}

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``asyncssh.connect``."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "client_keys": list(self.client_keys),
            "known_hosts": self.known_hosts,
        }
        kwargs.update(overrides)
        return kwargs

    def ssh_argv(self, command: str, *, known_hosts: str | None = None) -> list[str]:
        """An OpenSSH client command line running ``command`` as the test user on this host."""
        options = {
            "IdentitiesOnly": "yes",
            "UserKnownHostsFile": known_hosts or self.known_hosts,
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "ConnectTimeout": "10",
        }
        argv = ["ssh", "-F", "/dev/null", "-i", self.client_keys[0], "-p", str(self.port)]
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        return [*argv, f"{self.user}@{self.host}", "--", command]

    def run(
        self, command: str, *, timeout: float = 60.0, known_hosts: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command as the test user over plain ``ssh``; the caller checks returncode."""
        return subprocess.run(
            self.ssh_argv(command, known_hosts=known_hosts),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ps(self) -> list[UserProcess]:
        """The test user's processes on this host, sshd's own left out."""
        out = _sh("ps", "-u", self.user, "-o", "pid=,pgid=,args=", check=False).stdout
        try:
            netns = os.readlink(f"/proc/{self.sshd_pid}/ns/net")
        except OSError as exc:
            raise RuntimeError(f"sshd of host {self.name!r} (pid {self.sshd_pid}) is gone: {exc}") from None
        procs = []
        for line in out.splitlines():
            pid, pgid, *rest = line.split(None, 2)
            args = rest[0] if rest else ""
            if args.split(":", 1)[0] in _SSHD_NAMES or not _alive(int(pid)):
                continue
            if self._owns(int(pid), netns):
                procs.append(UserProcess(int(pid), int(pgid), args))
        return procs

    def _owns(self, pid: int, netns: str) -> bool:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != netns:
                return False
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False  # gone meanwhile
        if self.netns is not None:
            return True
        conn = next((v for v in environ if v.startswith(b"SSH_CONNECTION=")), None)
        if conn is None:
            return True
        parts = conn.decode(errors="replace").split("=", 1)[1].split()
        return len(parts) == 4 and parts[2] == self.host and parts[3] == str(self.port)

    def wait_ps(self, until: Callable[[list[UserProcess]], bool], timeout: float = 15.0) -> list[UserProcess]:
        """Poll ``ps()`` until ``until(procs)`` holds; returns those processes."""
        procs: list[UserProcess] = []

        def check() -> bool:
            nonlocal procs
            procs = self.ps()
            return until(procs)

        _wait(check, timeout, lambda: f"processes of {self.user} on host {self.name!r}: {procs}")
        return procs

    def kill_all(self) -> list[UserProcess]:
        """SIGKILL every process of the test user on this host; returns them once they are gone."""
        procs = self.ps()
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        _wait(
            lambda: not any(_alive(p.pid) for p in procs),
            10.0,
            lambda: f"still alive: {[p for p in procs if _alive(p.pid)]}",
        )
        return procs

    def kill_session(self) -> list[int]:
        """SIGKILL the sshd processes serving this host's connections (the daemon stays): every
        live connection drops at once; the user's processes stay. Returns the pids killed."""
        rows = _sh("ps", "-e", "-o", "pid=,ppid=,comm=").stdout.split("\n")
        children: dict[int, list[tuple[int, str]]] = {}
        for row in rows:
            if row.strip():
                pid_s, ppid_s, comm = row.split(None, 2)
                children.setdefault(int(ppid_s), []).append((int(pid_s), comm.strip()))
        pids: list[int] = []
        todo = [self.sshd_pid]
        while todo:
            for pid, comm in children.get(todo.pop(), []):
                if comm in _SSHD_NAMES:
                    pids.append(pid)
                    todo.append(pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait(lambda: not any(map(_alive, pids)), 10.0, lambda: f"sshd sessions still alive: {pids}")
        return pids

    def cut_link(self) -> None:
        """Take the namespace's side of the veth down: packets to the host are dropped, open
        connections hang (no reset, as when a cable is pulled), new ones time out."""
        # Not the root side: that would drop the route, and packets would leave by the default route.
        _sh("ip", "-n", self._netns(), "link", "set", self._peer(), "down")

    def restore_link(self) -> None:
        _sh("ip", "-n", self._netns(), "link", "set", self._peer(), "up")

    def _netns(self) -> str:
        if self.netns is None:
            raise RuntimeError(f"host {self.name!r} is on 127.0.0.1, with no link to cut: use kill_session()")
        return self.netns

    def _peer(self) -> str:
        assert self.veth is not None
        return self.veth[:-1] + "n"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError as exc:
            return f"({self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])


# --- the test user and its Python ---------------------------------------------------------------


@dataclass(frozen=True)
class _Base:
    user: str
    home: Path
    python: str
    session_dir: Path
    """In the user's home, root's, readable: authorized_keys, the work dirs, the fake version."""
    keys_dir: Path
    """root's, 0700: the client key, host keys, known_hosts files, sshd configs and logs."""
    client_key: Path
    wrong_host_key: str
    """``ssh-ed25519 AAAA...`` of a key no sshd uses."""


def _ensure_user() -> pwd.struct_passwd:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        _sh("useradd", "-m", "-s", "/bin/sh", USER)
    # A locked account ("!" in shadow) is refused when UsePAM is off; "*" only disables passwords.
    _sh("usermod", "-p", "*", USER)
    return pwd.getpwnam(USER)


def _package_files() -> list[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dirs = sorted({d.split("/")[0] for d in meta["tool"]["setuptools"]["package-dir"].values()})
    out = _sh(
        "git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
        "pyproject.toml", "README.md", *dirs,
    ).stdout  # fmt: skip
    return sorted(f for f in set(out.split("\0")) if f and (ROOT / f).is_file())


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


def _site_packages(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


def _chown(path: Path, pw: pwd.struct_passwd) -> None:
    _sh("chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", path)


def _prune(cache: Path, keep: set[Path]) -> None:
    """Drop venvs no session used lately (a session touches its own at every start)."""
    now = time.time()
    for d in cache.iterdir():
        max_age = {"deps": 7 * 86400, "lk": 86400}.get(d.name.split("-", 1)[0])
        stamp = d / ".lk-last-used"
        if max_age is None or d in keep:
            continue
        age = now - (stamp.stat().st_mtime if stamp.exists() else d.stat().st_mtime)
        if age > max_age:
            shutil.rmtree(d, ignore_errors=True)


def _user_python(pw: pwd.struct_passwd) -> str:
    """The test user's venv with lightning-kernel from this tree (built when the tree changed)."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    meta = tomllib.loads(pyproject.decode())
    system = os.path.realpath(SYSTEM_PYTHON).encode()
    files = _package_files()
    cache = Path(pw.pw_dir) / ".cache" / "lightning-kernel-ssh"
    cache.mkdir(parents=True, exist_ok=True)
    # ~/.cache is the user's own (its code cache, pip's): made here as root, it must be handed over.
    _chown(cache.parent, pw)
    deps = cache / f"deps-{_digest(system, pyproject)}"
    sources = (f.encode() + b"\0" + (ROOT / f).read_bytes() for f in files)
    proj = cache / f"lk-{_digest(system, deps.name.encode(), *sources)}"
    if not (deps / ".lk-complete").exists():
        shutil.rmtree(deps, ignore_errors=True)
        _sh(SYSTEM_PYTHON, "-m", "venv", deps)
        requirements = [*meta["project"]["dependencies"], *meta["project"]["optional-dependencies"]["s3"]]
        _sh(deps / "bin" / "python", "-m", "pip", "install", "-q", *requirements)
        _chown(deps, pw)
        (deps / ".lk-complete").touch()
    if not (proj / ".lk-complete").exists():
        shutil.rmtree(proj, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="lk-ssh-wheel-") as tmp:
            src = Path(tmp) / "src"
            for f in files:
                (src / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, src / f)
            dist = Path(tmp) / "dist"
            _sh(deps / "bin" / "python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src)
            (wheel,) = dist.glob("*.whl")
            _sh(SYSTEM_PYTHON, "-m", "venv", "--without-pip", proj)
            # addsitedir, not a bare path line: it also runs the .pth files of the deps venv.
            (_site_packages(proj) / "_lk_deps.pth").write_text(
                f"import site; site.addsitedir({str(_site_packages(deps))!r})\n"
            )
            # pip comes from the deps venv through that .pth, and installs into this venv.
            _sh(proj / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel)
        _chown(proj, pw)
        (proj / ".lk-complete").touch()
    for d in (deps, proj):
        (d / ".lk-last-used").touch()
    _prune(cache, {deps, proj})
    return str(proj / "bin" / "python")


def _keygen(path: Path, comment: str) -> str:
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)
    os.chmod(path, 0o600)
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


@pytest.fixture(scope="session")
def _ssh_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Base]:
    if os.geteuid() != 0:
        pytest.fail(f"the SSH fixtures need root (useradd, ip netns, sshd); running as uid {os.geteuid()}")
    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} is missing: apt-get install -y openssh-server (.ci/run does)")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir; /run is a tmpfs
    # The kernel's data dirs live under pytest's base temp: keep it root's only, even with --basetemp.
    os.chmod(tmp_path_factory.getbasetemp(), 0o700)
    keys_dir = tmp_path_factory.mktemp("sshd")
    os.chmod(keys_dir, 0o700)
    with _locked():
        pw = _ensure_user()
        python = _user_python(pw)
        sessions = Path(pw.pw_dir) / ".lk-ssh-sessions"
        sessions.mkdir(exist_ok=True)
        # sshd reads authorized_keys as the user: whatever the umask made it (the kernel's code run in
        # this process sets 077), the user must be able to pass through.
        os.chmod(sessions, 0o755)
        for old in sessions.iterdir():
            if time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
    session_dir = Path(tempfile.mkdtemp(dir=sessions))
    os.chmod(session_dir, 0o755)
    client_key = keys_dir / "client_ed25519"
    pub = _keygen(client_key, "lightning-kernel-tests")
    (session_dir / "authorized_keys").write_text(pub + "\n")
    os.chmod(session_dir / "authorized_keys", 0o644)
    wrong = _keygen(keys_dir / "wrong_host_ed25519", "not-the-host")
    try:
        yield _Base(USER, Path(pw.pw_dir), python, session_dir, keys_dir, client_key, wrong)
    finally:
        shutil.rmtree(session_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_python(_ssh_base: _Base) -> str:
    """The test user's Python, with this tree's lightning-kernel and s3fs."""
    return _ssh_base.python


@pytest.fixture(scope="session")
def ssh_wrong_version_python(_ssh_base: _Base) -> str:
    """A Python for the test user whose lightning-kernel says it is version 0.0.0+other (every way
    of asking: ``__version__``, ``_version``, ``importlib.metadata``)."""
    fake = _ssh_base.session_dir / "other-version"
    pkg = fake / "lightning_kernel"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f'__version__ = "{OTHER_VERSION}"\n')
    (pkg / "_version.py").write_text(f'__version__ = "{OTHER_VERSION}"\n')
    info = fake / f"lightning_kernel-{OTHER_VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: lightning-kernel\nVersion: {OTHER_VERSION}\n"
    )
    wrapper = _ssh_base.session_dir / "python-other-version"
    path = f"{fake}${{PYTHONPATH:+:$PYTHONPATH}}"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{path}" exec "{_ssh_base.python}" "$@"\n')
    # Modes set, not left to the umask: a kernel started in this process (tests do) makes it 077.
    for made in (fake, pkg, info, wrapper):
        os.chmod(made, 0o755)
    for made in (pkg / "__init__.py", pkg / "_version.py", info / "METADATA"):
        os.chmod(made, 0o644)
    return str(wrapper)


# --- the hosts -----------------------------------------------------------------------------------


def _sshd_config(base: _Base, name: str, address: str, port: int) -> Path:
    d = base.keys_dir
    config = d / f"{name}.sshd_config"
    config.write_text(
        f"""\
ListenAddress {address}
Port {port}
HostKey {d / f"{name}_host_ed25519"}
AuthorizedKeysFile {base.session_dir / "authorized_keys"}
AllowUsers {base.user}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
PidFile {d / f"{name}.sshd.pid"}
LogLevel VERBOSE
ClientAliveInterval 5
PrintMotd no
# Executors open connections and channels in bursts; the defaults (10:30:100, 10) drop some.
MaxStartups 200
MaxSessions 200
"""
    )
    return config


def _start_sshd(prefix: list[str], config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [*prefix, SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # a Ctrl-C of the test run must not take the daemons before teardown
        )
    try:
        _wait(
            lambda: proc.poll() is not None or "Server listening on" in log.read_text(errors="replace"),
            15.0,
            lambda: f"sshd did not listen:\n{log.read_text(errors='replace')}",
        )
    except BaseException:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _known_hosts(path: Path, host: str, port: int, key: str) -> str:
    pattern = host if port == 22 else f"[{host}]:{port}"
    path.write_text(f"{pattern} {key}\n")
    return str(path)


def _make_host(base: _Base, name: str, host: str, port: int, pid: int, **extra: Any) -> SshHost:
    key = " ".join(Path(base.keys_dir / f"{name}_host_ed25519.pub").read_text().split()[:2])
    wrong = base.wrong_host_key
    work_dir = base.session_dir / name
    work_dir.mkdir()
    pw = pwd.getpwnam(base.user)
    os.chown(work_dir, pw.pw_uid, pw.pw_gid)
    return SshHost(
        name=name,
        address=f"{base.user}@{host}:{port}",
        host=host,
        port=port,
        user=base.user,
        client_keys=[str(base.client_key)],
        known_hosts=_known_hosts(base.keys_dir / f"{name}.known_hosts", host, port, key),
        wrong_known_hosts=_known_hosts(base.keys_dir / f"{name}.wrong_known_hosts", host, port, wrong),
        python=base.python,
        home=str(base.home),
        work_dir=str(work_dir),
        log_path=str(base.keys_dir / f"{name}.sshd.log"),
        sshd_pid=pid,
        labels=["ssh", name],
        **extra,
    )


def _shutdown(host: SshHost, proc: subprocess.Popen[bytes]) -> None:
    try:
        host.kill_all()
        host.kill_session()
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def ssh_host(_ssh_base: _Base) -> Iterator[SshHost]:
    """Host "loop": sshd on 127.0.0.1 and a free port."""
    _keygen(_ssh_base.keys_dir / "loop_host_ed25519", "loop")
    log = _ssh_base.keys_dir / "loop.sshd.log"
    for _attempt in range(3):  # the free port may be taken before sshd binds it
        port = free_port()
        proc = _start_sshd([], _sshd_config(_ssh_base, "loop", "127.0.0.1", port), log)
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"sshd did not start:\n{log.read_text(errors='replace')}")
    host = _make_host(_ssh_base, "loop", "127.0.0.1", port, proc.pid)
    try:
        yield host
    finally:
        _shutdown(host, proc)


def _free_subnet() -> int:
    """X of a 10.200.X.0/24 no interface or route of this machine uses (random: fewer clashes with
    namespaces made by hand, such as ENVIRONMENT.md's 10.200.1.x)."""
    seen = _sh("ip", "-o", "-4", "addr", "show").stdout
    seen += _sh("ip", "-4", "route", "show", "table", "all").stdout
    taken = {int(x) for x in re.findall(r"\b10\.200\.(\d+)\.", seen)}
    free = [x for x in range(2, 255) if x not in taken]
    if not free:
        raise RuntimeError("every 10.200.X.0/24 (X = 2..254) is in use on this machine")
    return random.choice(free)


def _drop_stale_namespaces() -> None:
    """What sessions that died before their teardown left: namespaces with no process in them, and
    guard routes of subnets no interface holds any more."""
    for line in _sh("ip", "netns", "list").stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if ns.startswith(_NS_PREFIX) and not _sh("ip", "netns", "pids", ns, check=False).stdout.strip():
            _sh("ip", "netns", "del", ns, check=False)
            _sh("ip", "link", "del", f"lkv{ns[len(_NS_PREFIX) :]}h", check=False)
    held = _sh("ip", "-o", "-4", "addr", "show").stdout
    for line in _sh("ip", "-4", "route", "show", "type", "blackhole").stdout.splitlines():
        m = re.fullmatch(rf"blackhole (10\.200\.(\d+)\.0/24) metric {_GUARD_METRIC}\s*", line)
        if m and f" 10.200.{m[2]}.1/24 " not in held:
            _sh("ip", "route", "del", "blackhole", m[1], "metric", str(_GUARD_METRIC), check=False)


def _delete_netns(ns: str, veth: str, subnet: str | None) -> None:
    _sh("ip", "netns", "del", ns, check=False)
    _sh("ip", "link", "del", veth, check=False)  # usually gone with the namespace already
    if subnet is not None:
        _sh("ip", "route", "del", "blackhole", subnet, "metric", str(_GUARD_METRIC), check=False)


@pytest.fixture(scope="session")
def ssh_ns_host(_ssh_base: _Base) -> Iterator[SshHost]:
    """Host "ns": sshd on 10.200.X.2:22 in a network namespace; skipped where namespaces are refused."""
    tag = secrets.token_hex(3)
    ns, veth, peer = f"{_NS_PREFIX}{tag}", f"lkv{tag}h", f"lkv{tag}n"
    subnet: str | None = None
    with _locked():
        _drop_stale_namespaces()
        made = _sh("ip", "netns", "add", ns, check=False)
        if made.returncode != 0:
            pytest.skip(f"no network namespaces here: `ip netns add {ns}` says {made.stderr.strip()!r}")
        try:
            x = _free_subnet()
            subnet, outer, inner = f"10.200.{x}.0/24", f"10.200.{x}.1", f"10.200.{x}.2"
            # Whatever happens to the veth, packets for the subnet never take the default route out.
            _sh("ip", "route", "add", "blackhole", subnet, "metric", str(_GUARD_METRIC))
            _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
            _sh("ip", "link", "set", peer, "netns", ns)
            _sh("ip", "addr", "add", f"{outer}/24", "dev", veth)
            _sh("ip", "link", "set", veth, "up")
            _sh("ip", "-n", ns, "addr", "add", f"{inner}/24", "dev", peer)
            _sh("ip", "-n", ns, "link", "set", peer, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")  # remote port forwards bind 127.0.0.1 in there
            _keygen(_ssh_base.keys_dir / "ns_host_ed25519", "ns")
            log = _ssh_base.keys_dir / "ns.sshd.log"
            proc = _start_sshd(["ip", "netns", "exec", ns], _sshd_config(_ssh_base, "ns", inner, 22), log)
            if proc.poll() is not None:
                raise RuntimeError(f"sshd in {ns} exited with {proc.returncode}:\n{log.read_text()}")
        except BaseException:
            _delete_netns(ns, veth, subnet)
            raise
    # `ip netns exec` execs sshd: the Popen's pid is the daemon's.
    host = _make_host(_ssh_base, "ns", inner, 22, proc.pid, netns=ns, veth=veth)
    try:
        yield host
    finally:
        try:
            host.restore_link()
            _shutdown(host, proc)
        finally:
            _delete_netns(ns, veth, subnet)


# --- lightning-kernel.toml -----------------------------------------------------------------------


class WriteSshConfig(Protocol):
    def __call__(
        self, *hosts: SshHost | Mapping[str, Any], path: Path | None = None, **options: Any
    ) -> Path: ...


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_char(c: str) -> str:
    # Control characters and DEL may not appear raw in a TOML basic string.
    return _ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)


def _toml_str(s: str) -> str:
    return '"' + "".join(map(_toml_char, s)) + '"'


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return _toml_str(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r} ({type(v).__name__})")


def _toml_line(item: tuple[str, Any]) -> str:
    return f"{_toml_key(item[0])} = {_toml_value(item[1])}"


def _plain(v: Any) -> Any:
    """What tomllib reads back for ``v``."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items() if x is not None}
    return v


@pytest.fixture
def ssh_config_file(tmp_path: Path) -> WriteSshConfig:
    """``write(*hosts, path=None, **options)`` writes a lightning-kernel.toml: ``options`` in
    ``[executors.ssh]``, one ``[[executors.ssh.hosts]]`` per host (an SshHost's ``config()``, or a
    dict as is; a None value is left out); returns its path (``tmp_path`` by default)."""

    def write(*hosts: SshHost | Mapping[str, Any], path: Path | None = None, **options: Any) -> Path:
        table = _plain(options)
        entries = [_plain(h.config() if isinstance(h, SshHost) else h) for h in hosts]
        lines = ["[executors.ssh]", *map(_toml_line, table.items())]
        for entry in entries:
            lines += ["", "[[executors.ssh.hosts]]", *map(_toml_line, entry.items())]
        target = path or tmp_path / "lightning-kernel.toml"
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        expected = {"executors": {"ssh": {**table, **({"hosts": entries} if entries else {})}}}
        if tomllib.loads(target.read_text(encoding="utf-8")) != expected:
            raise AssertionError(f"{target} does not read back as written:\n{target.read_text()}")
        return target

    return write


# --- reports -------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, SshHost):
                title = f"sshd log of host {value.name!r} ({value.log_path})"
                report.sections.append((title, value.log_tail()))
    return report
