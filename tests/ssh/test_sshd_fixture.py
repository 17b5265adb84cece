"""The SSH fixtures themselves: real sshd logins, refused host keys, a user that cannot read root's
folders, a second host that is only on its own address, and the user's Python."""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import asyncssh
import pytest
from _fixtures.sshd import OTHER_VERSION, SshHost, UserProcess, WriteSshConfig
from lightning_kernel._version import __version__

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _asyncssh_run(host: SshHost, command: str, **overrides: object) -> str:
    async def main() -> str:
        async with asyncssh.connect(**host.connect_kwargs(**overrides)) as conn:
            result = await conn.run(command, check=True)
            return str(result.stdout)

    return asyncio.run(main())


@pytest.mark.parametrize("which", ["ssh_host", "ssh_ns_host"])
def test_login_with_the_key_and_known_hosts(which: str, request: pytest.FixtureRequest) -> None:
    host: SshHost = request.getfixturevalue(which)
    assert _asyncssh_run(host, "id -un; echo $SHELL").split() == [host.user, "/bin/sh"]
    done = host.run("id -un")
    assert (done.returncode, done.stdout.strip()) == (0, host.user), done.stderr
    # The key is root's alone; the known_hosts entries are in OpenSSH's form.
    assert os.stat(host.client_keys[0]).st_mode & 0o777 == 0o600
    pattern = host.host if host.port == 22 else f"[{host.host}]:{host.port}"
    assert Path(host.known_hosts).read_text().startswith(f"{pattern} ssh-ed25519 AAAA")


@pytest.mark.parametrize("which", ["ssh_host", "ssh_ns_host"])
def test_a_wrong_host_key_is_refused(which: str, request: pytest.FixtureRequest) -> None:
    host: SshHost = request.getfixturevalue(which)
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        _asyncssh_run(host, "true", known_hosts=host.wrong_known_hosts)
    done = host.run("true", known_hosts=host.wrong_known_hosts)
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr


def test_the_user_cannot_read_roots_folders(ssh_host: SshHost, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "kernel.db").write_text("secret")
    private = Path(tempfile.mkdtemp(prefix="lk-root-"))  # 0700, outside pytest's base temp
    public = Path(tempfile.mkdtemp(prefix="lk-public-"))
    try:
        (private / "f").write_text("secret")
        (public / "f").write_text("shared")
        os.chmod(public, 0o755)
        os.chmod(public / "f", 0o644)
        for path in (data / "kernel.db", private / "f"):
            done = ssh_host.run(f"cat {shlex.quote(str(path))}")
            assert done.returncode != 0 and "Permission denied" in done.stderr, (path, done)
        done = ssh_host.run(f"cat {shlex.quote(str(public / 'f'))}")  # the check above can fail
        assert (done.returncode, done.stdout) == (0, "shared"), done.stderr
    finally:
        for d in (private, public):
            for f in d.iterdir():
                f.unlink()
            d.rmdir()


def _can_connect(address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _connects_from(host: SshHost, address: str, port: int) -> bool:
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2).close()"
    done = host.run(f"{shlex.quote(host.python)} -c {shlex.quote(code)}")
    if done.returncode == 0:
        return True
    assert "ConnectionRefused" in done.stderr or "timed out" in done.stderr, done.stderr
    return False


def test_the_ns_host_is_only_on_its_own_address(ssh_host: SshHost, ssh_ns_host: SshHost) -> None:
    assert ssh_ns_host.host.startswith("10.200.") and ssh_ns_host.netns is not None
    assert _can_connect(ssh_ns_host.host, ssh_ns_host.port)
    assert not _can_connect("127.0.0.1", ssh_ns_host.port)  # nothing of the ns on root's loopback
    # The ns host's 127.0.0.1 is its own: the loop sshd, on root's loopback, is not there.
    assert _connects_from(ssh_host, "127.0.0.1", ssh_host.port)
    assert not _connects_from(ssh_ns_host, "127.0.0.1", ssh_host.port)
    # Its sshd is the daemon pid the dataclass names, inside the namespace.
    assert Path(f"/proc/{ssh_ns_host.sshd_pid}/comm").read_text().strip() == "sshd"
    assert os.readlink(f"/proc/{ssh_ns_host.sshd_pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_cut_link_hangs_connections_until_restored(ssh_ns_host: SshHost) -> None:
    host = ssh_ns_host

    async def main() -> None:
        async with asyncssh.connect(**host.connect_kwargs()) as conn:
            assert (await conn.run("echo up", check=True)).stdout == "up\n"
            host.cut_link()
            try:
                with pytest.raises(asyncio.TimeoutError):  # a hang, not a reset
                    await asyncio.wait_for(conn.run("echo cut", check=True), 1.5)
                with pytest.raises(OSError) as new:  # a new connection does not get through either
                    socket.create_connection((host.host, host.port), timeout=1.0).close()
                assert isinstance(new.value, TimeoutError) or new.value.errno == errno.EHOSTUNREACH, new.value
                # Nothing leaves by the default route meanwhile.
                route = subprocess.run(["ip", "route", "get", host.host], capture_output=True, text=True)
                assert f"dev {host.veth} " in route.stdout, route
            finally:
                host.restore_link()
            # The same connection carries on once TCP retransmits get through.
            result = await asyncio.wait_for(conn.run("echo back", check=True), 20)
            assert result.stdout == "back\n"

    asyncio.run(main())


@pytest.mark.parametrize("which", ["ssh_host", "ssh_ns_host"])
def test_lightning_kernel_in_the_hosts_python(which: str, request: pytest.FixtureRequest) -> None:
    host: SshHost = request.getfixturevalue(which)
    code = (
        "import importlib.metadata as m, lightning_kernel, s3fs; from lightning_kernel._version import __version__;"
        " print(__version__, m.version('lightning-kernel'), lightning_kernel.__file__)"
    )
    done = host.run(f"{shlex.quote(host.python)} -c {shlex.quote(code)}")
    assert done.returncode == 0, done.stderr
    version, dist_version, where = done.stdout.split()
    assert version == dist_version == __version__ == importlib.metadata.version("lightning-kernel")
    assert where.startswith(host.home + "/"), where  # installed from a copy, not this checkout


def test_the_wrong_version_python(ssh_host: SshHost, ssh_wrong_version_python: str) -> None:
    code = (
        "import importlib.metadata as m, lightning_kernel, lightning_kernel._version as v;"
        " print(lightning_kernel.__version__, v.__version__, m.version('lightning-kernel'))"
    )
    done = ssh_host.run(f"{shlex.quote(ssh_wrong_version_python)} -c {shlex.quote(code)}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [OTHER_VERSION] * 3


@pytest.mark.parametrize("which", ["ssh_host", "ssh_ns_host"])
def test_ps_kill_session_and_kill_all(which: str, request: pytest.FixtureRequest) -> None:
    host: SshHost = request.getfixturevalue(which)
    command = f"sleep {301 + len(which)}"
    client = subprocess.Popen(host.ssh_argv(f"exec {command}"), stdin=subprocess.DEVNULL)
    try:
        procs = host.wait_ps(lambda ps: bool(ps))
        assert [p.args for p in procs] == [command]  # sshd's own processes are left out
        assert host.kill_session()
        assert client.wait(timeout=10) == 255  # the connection dropped
        # Without a terminal the remote process outlives its connection: kill_all cleans it up.
        assert [p.args for p in host.ps()] == [command]
        assert [p.args for p in host.kill_all()] == [command]
        assert host.ps() == []
    finally:
        client.kill()
        client.wait()


def _running(command: str, procs: list[UserProcess]) -> bool:
    return any(p.args == command for p in procs)


def test_ps_tells_the_hosts_apart(ssh_host: SshHost, ssh_ns_host: SshHost) -> None:
    hosts = {"sleep 401": ssh_host, "sleep 402": ssh_ns_host}
    clients = [subprocess.Popen(h.ssh_argv(f"exec {c}"), stdin=subprocess.DEVNULL) for c, h in hosts.items()]
    try:
        for command, host in hosts.items():
            procs = host.wait_ps(partial(_running, command))
            assert [p.args for p in procs] == [command]
    finally:
        for host in hosts.values():
            host.kill_all()
        for client in clients:
            assert client.wait(timeout=10) != 0


def test_ssh_config_file(ssh_host: SshHost, ssh_config_file: WriteSshConfig) -> None:
    odd = 'a "quoted" \\ value\twith\nnewline, \x7f and é'
    other = ssh_host.config(name="other", labels=["gpu", odd], gpus=0, env={"HF_HOME": odd, "odd key": "x"})
    path = ssh_config_file(ssh_host, {**other, "work_dir": None}, keepalive_s=1.5, known_hosts="none")
    assert path.name == "lightning-kernel.toml"
    data = tomllib.loads(path.read_text())["executors"]["ssh"]
    assert (data["keepalive_s"], data["known_hosts"]) == (1.5, "none")
    loop, second = data["hosts"]
    assert loop == ssh_host.config()
    assert loop["address"] == f"lkssh@127.0.0.1:{ssh_host.port}" and loop["cpus"] == 4
    assert second["labels"] == ["gpu", odd] and second["env"] == {"HF_HOME": odd, "odd key": "x"}
    assert "work_dir" not in second and second["gpus"] == 0
