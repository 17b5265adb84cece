"""A run's persisted files over the API: a Path's manifest, and each file's bytes, checked."""

from __future__ import annotations

import hashlib
import signal

import httpx
import pytest
from _fixtures._ports import free_port, wait_port

APP = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Writer(LightningWork):
    def __init__(self):
        super().__init__()
        self.report = "lit://report.txt"
        self.ckpts = "lit://ckpts"
    def run(self):
        with open(self.report, "w") as f:
            f.write("accuracy 0.93\\n")
        os.makedirs(self.ckpts, exist_ok=True)
        for i in range(3):
            with open(os.path.join(self.ckpts, f"epoch={i}.ckpt"), "wb") as f:
                f.write(bytes([i]) * (100 + i))

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Writer()
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            self.stop()

app = LightningApp(Root())
"""


@pytest.fixture
def server(lk):
    port = free_port()
    proc = lk.popen("serve", "--port", str(port))
    try:
        wait_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_a_paths_files_are_listed_and_downloaded_and_nothing_else_is(lk, server):
    lk("run", "app", lk.app(APP), "--server", server, check=True, timeout=120)
    with httpx.Client(base_url=server, timeout=30) as http:
        run = http.get("/api/runs/latest").json()["id"]
        events = http.get(f"/api/runs/{run}/events", params={"limit": 1000}).json()
        persisted = {
            e["body"]["data"]["path"]: e["body"]["data"]
            for e in events
            if e["type"] == "work.record" and e["body"]["kind"] == "path.persisted"
        }
        assert set(persisted) == {"lit://report.txt", "lit://ckpts"}

        ckpts = http.get(f"/api/runs/{run}/manifests/{persisted['lit://ckpts']['manifest']}").json()
        assert ckpts["kind"] == "dir" and ckpts["origin"] == "root.w"
        assert sorted(ckpts["files"]) == ["epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"]
        ref = persisted["lit://ckpts"]["manifest"]
        got = http.get(f"/api/runs/{run}/manifests/{ref}/files/epoch=2.ckpt")
        assert got.status_code == 200 and got.content == bytes([2]) * 102
        assert got.headers["x-content-sha256"] == hashlib.sha256(got.content).hexdigest()
        assert got.headers["x-content-sha256"] == ckpts["files"]["epoch=2.ckpt"]["sha256"]
        assert 'filename="epoch_2.ckpt"' in got.headers["content-disposition"]

        report = persisted["lit://report.txt"]["manifest"]
        one = http.get(f"/api/runs/{run}/manifests/{report}/files/report.txt")  # a file Path's one file
        assert one.status_code == 200 and one.text == "accuracy 0.93\n"
        assert 'filename="report.txt"' in one.headers["content-disposition"]

        # The store holds the pickled app and the code too: no manifest of the run names them.
        app_ref = events[0]["body"]["app"]
        assert http.get(f"/api/runs/{run}/manifests/{app_ref}").status_code == 404
        assert http.get(f"/api/runs/{run}/manifests/{app_ref}/files/app.py").status_code == 404
        assert http.get(f"/api/runs/{run}/manifests/{ref}/files/../secret").status_code == 404
        assert http.get(f"/api/runs/{run}/manifests/{ref}/files/nope.ckpt").status_code == 404
