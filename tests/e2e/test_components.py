"""Issue 12, components and Lightning App's import paths, end to end through ``lightning-kernel run app``:
a TracerPythonScript whose outputs (a file, a glob of files, a global) another Work reads; a
PopenPythonScript whose exit code fails the run; an app that imports every module path of Lightning
App that lightning-kernel provides."""

from __future__ import annotations

import textwrap

MAKE = """
import argparse, os, sys

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int)
parser.add_argument("--greeting")
args = parser.parse_args()
assert __name__ == "__main__", __name__
os.makedirs("parts", exist_ok=True)
for i in range(args.n):
    with open(f"parts/{i}.txt", "w") as f:
        f.write(str(i))
with open("result.txt", "w") as f:
    f.write(f"{args.greeting} {os.environ['WHO']} {sys.argv[1:]} {given}")
total = args.n * 10
"""

TRACER_APP = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.components import TracerPythonScript

class Reader(LightningWork):
    def __init__(self):
        super().__init__()
        self.text = ""
        self.parts = []
        self.total = 0
    def run(self, result, parts, total):
        assert type(result).__name__ == "Path", type(result)
        with open(result) as f:
            self.text = f.read()
        self.parts = sorted(os.listdir("parts"))
        self.total = total.value

class Flow(LightningFlow):
    def __init__(self):
        super().__init__()
        self.make = TracerPythonScript(
            "scripts/make.py",
            script_args="--n 3",
            outputs=["result.txt", "parts/*.txt", "total"],
            env={"WHO": "world"},
        )
        self.read = Reader()
    def run(self):
        self.make.run(params={"greeting": "hello"}, given="kw")
        if self.make.has_succeeded:
            outputs = self.make.paths
            self.read.run(outputs["result.txt"], outputs["parts/*.txt"], self.make.total)
            if self.read.has_succeeded:
                self.stop(f"read: {self.read.text} | {self.read.parts} | {self.read.total}")

app = LightningApp(Flow())
"""


def test_a_traced_script_hands_its_files_to_another_work(lk):
    (lk.dir / "scripts").mkdir()
    (lk.dir / "scripts" / "make.py").write_text(textwrap.dedent(MAKE))
    proc = lk("run", "app", lk.app(TRACER_APP), check=True)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "read: hello world ['--n', '3', '--greeting=hello'] kw | ['0.txt', '1.txt', '2.txt'] | 30"
    make = lk.state()["root"]["works"]["make"]["vars"]
    assert make["result.txt"] == {"type": "__path__", "path": "lit://result.txt", "origin": "root.make"}
    assert [p["path"] for p in make["parts/*.txt"]] == [f"lit://parts/{i}.txt" for i in range(3)]
    assert make["total"]["type"] == "__payload__"
    assert make["script_args"] == ["--n", "3", "--greeting=hello"]
    kinds = [e["body"]["kind"] for e in lk.json_lines("history", "latest") if e["type"] == "work.record"]
    assert kinds.count("path.transferred") >= 2  # the file, and the glob's files


DDP_SCRIPT = """
import torch.distributed as dist
from lightning_kernel.trainer import Trainer
from lightning_kernel.trainer.demos.boring_classes import BoringModel

trainer = Trainer(max_steps=2, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(BoringModel())
print(f"world {dist.get_world_size()} at rank {trainer.global_rank}", flush=True)
"""

DDP_APP = """
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel.components import TracerPythonScript

class Flow(LightningFlow):
    def __init__(self):
        super().__init__()
        self.train = TracerPythonScript("ddp.py", cache_calls=False)
        self.runs = 0
    def run(self):
        if self.runs < 2 and not self.train.is_running:
            self.runs += 1
            self.train.run(restart_count=self.runs)
        elif self.train.has_succeeded and self.train.restart_count == 2:
            self.stop("trained twice in one worker")

app = LightningApp(Flow())
"""


def test_a_traced_ddp_script_leaves_its_process_group_so_the_worker_can_train_again(lk):
    (lk.dir / "ddp.py").write_text(textwrap.dedent(DDP_SCRIPT))
    proc = lk("run", "app", lk.app(DDP_APP), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "trained twice in one worker"
    assert proc.stdout.count("world 2 at rank 0") == 2, proc.stdout
    assert "received errors" not in proc.stderr, proc.stderr  # gloo, when rank 0 never left its group
    started = [e for e in lk.json_lines("history", "latest") if e["type"] == "work.worker_started"]
    assert len(started) == 1, "both calls in the one worker"


FAIL = """
import os, sys
print("script sees", sys.argv[1:], os.environ["SCRIPT_KEY"])
sys.exit(3)
"""

POPEN_APP = """
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel.components import PopenPythonScript

class Flow(LightningFlow):
    def __init__(self):
        super().__init__()
        self.script = PopenPythonScript("fail.py", script_args=["--x", "1"], env={"SCRIPT_KEY": "v"})
    def run(self):
        self.script.run()

app = LightningApp(Flow())
"""


def test_a_popen_script_exiting_non_zero_fails_the_run_with_its_code(lk):
    (lk.dir / "fail.py").write_text(textwrap.dedent(FAIL))
    proc = lk("run", "app", lk.app(POPEN_APP))
    assert proc.returncode != 0
    assert "script sees ['--x', '1'] v" in proc.stdout
    assert "root.script: script fail.py exited with code 3" in proc.stderr
    state = lk.state()
    assert state["run"]["status"] == "failed"
    script = state["root"]["works"]["script"]
    assert script["status"]["reason"] == "ScriptError"
    assert script["vars"]["exit_code"] == 3 and isinstance(script["vars"]["pid"], int)


LA_PATHS_APP = """
from lightning_kernel.components import PopenPythonScript, ServeGradio, ServeStreamlit, TracerPythonScript
from lightning_kernel.components.python import TracerPythonScript as T2
from lightning_kernel.components.python.popen import PopenPythonScript as P2
from lightning_kernel.components.python.tracer import TracerPythonScript as T3
from lightning_kernel.components.serve import ServeGradio as G2
from lightning_kernel.components.serve.gradio_server import ServeGradio as G3
from lightning_kernel.components.serve.streamlit import ServeStreamlit as S2
from lightning_kernel.core import LightningApp, LightningFlow, LightningWork
from lightning_kernel.core.app import LightningApp as A2
from lightning_kernel.core.flow import LightningFlow as F2
from lightning_kernel.core.work import LightningWork as W2
from lightning_kernel.storage import Mount
from lightning_kernel.storage.drive import Drive
from lightning_kernel.storage.mount import Mount as M2
from lightning_kernel.storage.path import Path
from lightning_kernel.storage.payload import Payload
from lightning_kernel.testing import EmptyFlow
from lightning_kernel.testing.helpers import EmptyWork
from lightning_kernel.utilities.app_helpers import pretty_state
from lightning_kernel.utilities.enum import AppStage, WorkFailureReasons, WorkStageStatus
from lightning_kernel.utilities.packaging.cloud_compute import CloudCompute
from lightning_kernel.utilities.tracer import Tracer

assert (A2, F2, W2, T2, T3, P2, G2, G3, S2, M2) == (
    LightningApp, LightningFlow, LightningWork, TracerPythonScript, TracerPythonScript, PopenPythonScript,
    ServeGradio, ServeGradio, ServeStreamlit, Mount,
)

class Writer(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("cpu"))
        self.out = Path("lit://out.txt")
        self.value = None
    def run(self):
        self.out.write_text("written")
        self.value = Payload({"k": 1})

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.writer = Writer()
        self.idle = EmptyWork()
        self.child = EmptyFlow()
    def run(self):
        self.writer.run()
        self.idle.run()
        if self.writer.status.stage == WorkStageStatus.SUCCEEDED and self.idle.has_succeeded:
            shown = pretty_state(self.state)
            print("works:", sorted(shown["works"]), "flows:", sorted(shown.get("flows", {})))
            self.stop("done")

app = LightningApp(Root())
"""


def test_an_app_importing_every_lightning_app_module_path_runs(lk):
    proc = lk("run", "app", lk.app(LA_PATHS_APP), check=True)
    assert "works: ['idle', 'writer'] flows: ['child']" in proc.stdout
    assert lk.state()["root"]["works"]["writer"]["vars"]["out"]["path"] == "lit://out.txt"


MOUNTS = """
import os
from lightning_kernel import CloudCompute, LightningApp, LightningFlow, LightningWork
from lightning_kernel.storage import Mount

class Reader(LightningWork):
    def __init__(self, mount):
        super().__init__(cloud_compute=CloudCompute(mounts=mount))
        self.text = ""
    def run(self):
        self.text = open(os.path.join(MOUNT_AT, "hello.txt")).read()

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Reader(MOUNT)
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            self.stop(f"read {self.w.text}")

app = LightningApp(Root())
"""


def test_a_local_mount_maps_to_its_folder_and_a_cloud_one_needs_the_cloud_executor(lk, tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "hello.txt").write_text("mounted")
    at = tmp_path / "mnt" / "dataset"
    local = f"from lightning_kernel.storage import Mount\nMOUNT_AT = {str(at)!r}\nMOUNT = Mount({str(data)!r}, mount_path=MOUNT_AT)\n"
    proc = lk("run", "app", lk.app(local + MOUNTS, "local.py"), check=True)
    assert proc.stdout.strip().splitlines()[-1] == "read mounted"

    cloud = "from lightning_kernel.storage import Mount\nMOUNT_AT = '/data/dataset'\nMOUNT = Mount('s3://bucket/dataset/', mount_path=MOUNT_AT)\n"
    proc = lk("run", "app", lk.app(cloud + MOUNTS, "cloud.py"))
    assert proc.returncode == 1
    assert "s3://bucket/dataset/" in proc.stderr and "MountError" in proc.stderr, proc.stderr
