"""The ``[executors.ssh]`` table of ``lightning-kernel.toml``, checked: every error names the host and
the field, and says what is expected.

::

    [executors.ssh]
    known_hosts = "~/.ssh/known_hosts"   # the default; "none" only per host, with a warning
    keepalive_s = 5                      # a dead link is seen within 3 keepalives
    ciphers = ["aes128-gcm@openssh.com"] # tried first; the default prefers AES-GCM (see CIPHERS)

    [[executors.ssh.hosts]]
    name = "box1"
    address = "alice@10.0.0.5:22"        # user@ and :port optional
    client_keys = ["~/.ssh/id_ed25519"]  # else the agent and ~/.ssh/id_*
    python = "/opt/venv/bin/python"      # with the kernel's lightning-kernel version
    cpus = 16                            # else the host's count
    gpus = 2
    labels = ["gpu"]                     # matched against CloudCompute(name=...)
    setup = ["pip install -r requirements.txt"]   # once per kernel start, before the first Work
    work_dir = "~/.lightning-kernel/works"        # the host's folder for the Works' folders
    env = { HF_HOME = "/data/hf" }
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from typing import Any

from lightning_kernel.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_HOST_KEYS = {
    "name",
    "address",
    "client_keys",
    "known_hosts",
    "python",
    "cpus",
    "gpus",
    "labels",
    "setup",
    "work_dir",
    "env",
    "passphrase",
}
_TOP_KEYS = {"known_hosts", "keepalive_s", "connect_timeout_s", "ciphers", "hosts", "data_dir"}
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
"""Preferred first (asyncssh's other defaults follow): with AES-NI, as on nearly every x86 and Arm
server, asyncssh's SFTP moved 200 MB at ~400 MB/s with AES-GCM and ~220-320 MB/s with its default
chacha20-poly1305 here (OpenSSH's scp, chacha20 by default: 206 MB/s)."""


@dataclass(frozen=True)
class HostConfig:
    name: str
    host: str
    port: int = 22
    user: str = ""
    client_keys: tuple[str, ...] = ()
    """Key files; empty: the agent and the default ``~/.ssh/id_*``."""
    known_hosts: str = "~/.ssh/known_hosts"
    """A known_hosts file, or ``"none"`` (no verification: warned about at every start)."""
    python: str = "python3"
    cpus: int | None = None
    """None: the host's CPU count, read when it is first reached."""
    gpus: int = 0
    labels: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    work_dir: str = ""
    """The host's folder for Works (``~`` is the remote HOME); empty: ``~/.lightning-kernel/works``."""
    env: dict[str, str] = field(default_factory=dict)
    passphrase: str | None = None

    @property
    def verify(self) -> bool:
        return self.known_hosts.lower() != "none"

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SshConfig:
    hosts: tuple[HostConfig, ...] = ()
    keepalive_s: float = 5.0
    connect_timeout_s: float = 10.0
    ciphers: tuple[str, ...] = CIPHERS
    """Encryption algorithms tried first (``ciphers = [...]`` in ``[executors.ssh]``)."""

    def host(self, name: str) -> HostConfig:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(f"no SSH host named {name!r}; configured: {[h.name for h in self.hosts]}")


def _where(i: int, raw: dict[str, Any]) -> str:
    name = raw.get("name")
    return f"[[executors.ssh.hosts]] #{i + 1}" + (f" ({name!r})" if isinstance(name, str) else "")


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    return tuple(value)


def _count(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    return value


def parse_address(where: str, address: Any) -> tuple[str, str, int]:
    """``user@host:port`` -> ``(user, host, port)``; user and port optional, IPv6 in brackets."""
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"{where}: address must be a string like 'alice@10.0.0.5:22', got {address!r}")
    rest = address.strip()
    user = ""
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port = 22
    m = re.match(r"^\[(?P<h>[^\]]+)\](?::(?P<p>\d+))?$", rest) or re.match(
        r"^(?P<h>[^:\[\]]+)(?::(?P<p>\d+))?$", rest
    )
    if m is None or not m.group("h"):
        raise ConfigError(f"{where}: address {address!r} is not user@host[:port]")
    if m.group("p"):
        port = int(m.group("p"))
        if not 0 < port < 65536:
            raise ConfigError(f"{where}: address {address!r} has port {port}, not 1-65535")
    return user or getpass.getuser(), m.group("h"), port


def parse(table: dict[str, Any]) -> SshConfig:
    """The checked config of ``[executors.ssh]`` (the table as the TOML reader gives it)."""
    unknown = sorted(set(table) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"[executors.ssh]: unknown setting(s) {unknown}; known: {sorted(_TOP_KEYS - {'data_dir'})}"
        )
    default_known = table.get("known_hosts", "~/.ssh/known_hosts")
    if not isinstance(default_known, str) or not default_known:
        raise ConfigError(f"[executors.ssh]: known_hosts must be a file path, got {default_known!r}")
    if default_known.lower() == "none":
        raise ConfigError(
            "[executors.ssh]: known_hosts = 'none' turns host key checks off for every host; it is allowed "
            "per host only ([[executors.ssh.hosts]] known_hosts = 'none')"
        )
    keepalive = table.get("keepalive_s", 5.0)
    timeout = table.get("connect_timeout_s", 10.0)
    for key, value in (("keepalive_s", keepalive), ("connect_timeout_s", timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"[executors.ssh]: {key} must be a number of seconds > 0, got {value!r}")
    ciphers = _strings("[executors.ssh]", "ciphers", table.get("ciphers", list(CIPHERS)))
    raw_hosts = table.get("hosts", [])
    if not isinstance(raw_hosts, list) or not all(isinstance(h, dict) for h in raw_hosts):
        raise ConfigError("[executors.ssh]: hosts must be [[executors.ssh.hosts]] tables")
    hosts: list[HostConfig] = []
    for i, raw in enumerate(raw_hosts):
        where = _where(i, raw)
        bad = sorted(set(raw) - _HOST_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown setting(s) {bad}; known: {sorted(_HOST_KEYS)}")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: name must be letters, digits, '-' or '_' (up to 63), got {name!r}")
        if any(h.name == name for h in hosts):
            raise ConfigError(f"{where}: a host named {name!r} is configured twice")
        if "address" not in raw:
            raise ConfigError(f"{where}: address is missing (user@host[:port])")
        user, host, port = parse_address(where, raw["address"])
        known = raw.get("known_hosts", default_known)
        if not isinstance(known, str) or not known:
            raise ConfigError(f"{where}: known_hosts must be a file path or 'none', got {known!r}")
        python = raw.get("python", "python3")
        if not isinstance(python, str) or not python.strip():
            raise ConfigError(f"{where}: python must be the path of a Python on the host, got {python!r}")
        env = raw.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and isinstance(v, str)
            for k, v in env.items()
        ):
            raise ConfigError(f"{where}: env must be a table of NAME = 'value' strings, got {env!r}")
        cpus = raw.get("cpus")
        work_dir = raw.get("work_dir", "")
        if not isinstance(work_dir, str):
            raise ConfigError(f"{where}: work_dir must be a folder path on the host, got {work_dir!r}")
        passphrase = raw.get("passphrase")
        if passphrase is not None and not isinstance(passphrase, str):
            raise ConfigError(f"{where}: passphrase must be a string")
        hosts.append(
            HostConfig(
                name=name,
                host=host,
                port=port,
                user=user,
                client_keys=tuple(
                    os.path.expanduser(k) for k in _strings(where, "client_keys", raw.get("client_keys", []))
                ),
                known_hosts=known if known.lower() == "none" else os.path.expanduser(known),
                python=python.strip(),
                cpus=None if cpus is None else _count(where, "cpus", cpus) or None,
                gpus=_count(where, "gpus", raw.get("gpus", 0)),
                labels=_strings(where, "labels", raw.get("labels", [])),
                setup=_strings(where, "setup", raw.get("setup", [])),
                work_dir=work_dir,
                env=dict(env),
                passphrase=passphrase,
            )
        )
    return SshConfig(
        hosts=tuple(hosts), keepalive_s=float(keepalive), connect_timeout_s=float(timeout), ciphers=ciphers
    )
