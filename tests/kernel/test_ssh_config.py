"""The SSH executor's config and placement, as pure functions: every error names the host and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning_kernel._compute import requested
from lightning_kernel.errors import ConfigError, ExecutorError
from lightning_kernel.executors.ssh import parse
from lightning_kernel.executors.ssh._placement import Placement


def host(**kw: object) -> dict[str, object]:
    return {"name": "box1", "address": "alice@10.0.0.5:2222", **kw}


def test_a_full_host_entry_is_read() -> None:
    cfg = parse(
        {
            "known_hosts": "/etc/kh",
            "keepalive_s": 3,
            "hosts": [host(client_keys="~/.ssh/k", python="/opt/py", cpus=16, gpus=2, labels=["gpu"])],
        }
    )
    (h,) = cfg.hosts
    assert (h.user, h.host, h.port) == ("alice", "10.0.0.5", 2222)
    assert h.known_hosts == "/etc/kh" and h.verify and h.python == "/opt/py"
    assert h.client_keys[0].endswith("/.ssh/k") and not h.client_keys[0].startswith("~")
    assert (h.cpus, h.gpus, h.labels) == (16, 2, ("gpu",))
    assert cfg.keepalive_s == 3.0


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"hosts": [host(address="alice@")]}, ["#1 ('box1')", "address"]),
        ({"hosts": [host(address="a@h:99999")]}, ["port 99999"]),
        ({"hosts": [host(gpus=-1)]}, ["gpus", "whole number"]),
        ({"hosts": [host(gpus=True)]}, ["gpus"]),
        ({"hosts": [host(labels="gpu", colour="red")]}, ["unknown setting", "colour"]),
        ({"hosts": [host(), host()]}, ["configured twice"]),
        ({"hosts": [{"name": "box1"}]}, ["address is missing"]),
        ({"hosts": [host(name="bad name")]}, ["name must be"]),
        ({"known_hosts": "none", "hosts": [host()]}, ["per host only"]),
        ({"keepalive_s": 0}, ["keepalive_s"]),
        ({"hosts": [host(env={"1X": "y"})]}, ["env must be"]),
        ({"hots": []}, ["unknown setting", "hots"]),
    ],
)
def test_bad_settings_are_named(table: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse(table)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_known_hosts_none_is_allowed_per_host_and_turns_verification_off() -> None:
    (h,) = parse({"hosts": [host(known_hosts="none")]}).hosts
    assert not h.verify


def test_ipv6_and_default_user_and_port() -> None:
    (h,) = parse({"hosts": [host(address="[::1]")]}).hosts
    assert h.host == "::1" and h.port == 22 and h.user


def test_what_a_cloud_compute_asks_for() -> None:
    assert requested({"name": "default"}) == {"cpus": 1.0, "gpus": 0.0}
    assert requested({"name": "gpu-fast-multi"})["gpus"] == 4
    assert requested({"name": "gpu", "resources": {"gpus": 2, "cpus": 8}}) == {"cpus": 8.0, "gpus": 2.0}
    with pytest.raises(ValueError, match="whole GPUs"):
        requested({"name": "gpu", "resources": {"gpus": 0.5}})


def placement() -> Placement:
    cfg = parse(
        {
            "hosts": [
                host(name="cpu1", cpus=2),
                host(name="gpubox", cpus=8, gpus=2, labels=["gpu"]),
            ]
        }
    )
    return Placement(cfg.hosts)


def test_gpus_are_never_shared_and_a_full_host_means_waiting() -> None:
    p = placement()
    a = p.take("gpu", requested({"name": "gpu"}))
    b = p.take("gpu", requested({"name": "gpu"}))
    assert a is not None and b is not None
    assert {a.host, b.host} == {"gpubox"} and {a.gpus, b.gpus} == {(0,), (1,)}
    assert p.take("gpu", requested({"name": "gpu"})) is None
    assert "2/2 gpus in use" in p.busy("gpu", requested({"name": "gpu"}))
    p.release(a)
    c = p.take("gpu", requested({"name": "gpu"}))
    assert c is not None and c.gpus == a.gpus


def test_generic_names_go_anywhere_and_the_least_loaded_host_is_chosen() -> None:
    p = placement()
    first = p.take("default", {"cpus": 2.0, "gpus": 0.0})
    second = p.take("cpu", {"cpus": 2.0, "gpus": 0.0})
    assert first is not None and second is not None and first.host != second.host


def test_what_no_host_could_hold_is_refused_naming_what_exists() -> None:
    p = placement()
    with pytest.raises(ExecutorError, match=r"asks for 1 cpus and 4 gpus, more than any matching host"):
        p.candidates("gpu", requested({"name": "gpu", "resources": {"gpus": 4}}))
    with pytest.raises(ExecutorError, match=r"no SSH host has the label 'tpu'.*gpubox \(cpus 8, gpus 2"):
        p.candidates("tpu", requested({"name": "tpu"}))
    with pytest.raises(ExecutorError, match="no hosts"):
        Placement(()).candidates("default", {"cpus": 1.0})


def test_the_sweep_removes_what_dead_workers_left_a_day_ago_and_nothing_alive(tmp_path: Path) -> None:
    import os
    import subprocess

    from lightning_kernel.executors.ssh._handle import SSH_DIR, SWEEP

    root = tmp_path / SSH_DIR
    for run, pid, age in (
        ("dead-old", 999_999_999, 2 * 86400),
        ("live-old", os.getpid(), 2 * 86400),
        ("dead-new", 999_999_999, 0),
    ):
        d = root / run / "root.w"
        d.mkdir(parents=True)
        (d / "pid-1").write_text(f"{pid}\n")
        (d / "log-1").write_text("the last words\n")
        then = d.stat().st_mtime - age
        os.utime(d, (then, then))
    subprocess.run(["sh", "-c", SWEEP], env={**os.environ, "HOME": str(tmp_path)}, check=True)
    assert sorted(p.name for p in root.iterdir()) == ["dead-new", "live-old"]


def test_a_host_that_did_not_answer_is_passed_over_and_all_down_is_an_error() -> None:
    p = Placement(parse({"hosts": [host(name="a", cpus=2), host(name="b", cpus=2)]}).hosts)
    p.mark_down("a", "host a: cannot connect")
    slot = p.take("default", {"cpus": 1.0})
    assert slot is not None and slot.host == "b"
    p.mark_down("b", "host b: cannot connect")
    with pytest.raises(ExecutorError, match="answers: host a: cannot connect; host b: cannot connect"):
        p.take("default", {"cpus": 1.0})
