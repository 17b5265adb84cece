"""Issue 3 end to end: Paths move between Works, on the local store and on S3 (moto's server),
and an interrupted Work resumes from its own checkpoint file."""

from __future__ import annotations

import os
import signal

import pytest
from test_resume import wait_for_step

HANDOVER = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class ModelTraining(LightningWork):
    def __init__(self):
        super().__init__()
        self.checkpoint_dir = "lit://outputs/checkpoints"
    def run(self):
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        with open(os.path.join(self.checkpoint_dir, "checkpoint_1.ckpt"), "wb") as f:
            f.write(b"weights")

class ModelDeploy(LightningWork):
    def run(self, checkpoint_dir):
        print(sorted(os.listdir(checkpoint_dir)))
        with open(os.path.join(checkpoint_dir, "checkpoint_1.ckpt"), "rb") as f:
            print(f.read().decode())

class Flow(LightningFlow):
    def __init__(self):
        super().__init__()
        self.train = ModelTraining()
        self.deploy = ModelDeploy()
    def run(self):
        self.train.run()
        self.deploy.run(checkpoint_dir=self.train.checkpoint_dir)
        if self.deploy.has_succeeded:
            self.stop()

app = LightningApp(Flow())
"""

RESUMABLE = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Trainer(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.ckpt = "lit://ckpt/last.txt"
        self.step = 0
        self.started_from = []
    def run(self):
        start = int(open(self.ckpt).read()) if os.path.exists(self.ckpt) else 0
        self.started_from = self.started_from + [start]
        os.makedirs(os.path.dirname(self.ckpt), exist_ok=True)
        for i in range(start + 1, 31):
            time.sleep(0.06)
            # Written whole then renamed: a kill -9 between truncating and writing would leave an
            # empty checkpoint, which no resume can read.
            with open(f"{self.ckpt}.tmp", "w") as f:
                f.write(str(i))
            os.replace(f"{self.ckpt}.tmp", self.ckpt)
            self.step = i

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.steps = Trainer()
    def run(self):
        self.steps.run()
        if self.steps.has_succeeded:
            self.stop(f"started from {self.steps.started_from}")

app = LightningApp(Root())
"""


def test_handover_on_the_local_store(lk):
    proc = lk("run", "app", lk.app(HANDOVER), check=True)
    assert "['checkpoint_1.ckpt']" in proc.stdout and "weights" in proc.stdout
    kinds = [e["body"]["kind"] for e in lk.json_lines("history", "latest") if e["type"] == "work.record"]
    assert "path.persisted" in kinds and "path.transferred" in kinds


@pytest.mark.parametrize("endpoint_from", ["flag", "env"])
def test_handover_on_s3(lk, s3_server, s3_bucket, endpoint_from):
    lk.env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    lk.env.pop("LK_S3_ENDPOINT_URL", None)
    lk.env.pop("AWS_ENDPOINT_URL", None)
    options = ["--artifacts", f"s3://{s3_bucket}/apps"]
    if endpoint_from == "flag":
        options += ["--s3-endpoint", s3_server.endpoint_url]
    else:
        lk.env["LK_S3_ENDPOINT_URL"] = s3_server.endpoint_url
    proc = lk("run", "app", *options, lk.app(HANDOVER), check=True)
    assert "['checkpoint_1.ckpt']" in proc.stdout and "weights" in proc.stdout
    assert not os.path.exists(lk.dir / "data" / "artifacts"), "nothing may go to the local store"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_work_resumes_from_its_checkpoint(lk, how):
    proc = lk.popen("run", "app", lk.app(RESUMABLE))
    wait_for_step(lk, 5)
    proc.send_signal(how)
    proc.communicate(timeout=30)
    if how == signal.SIGTERM:
        # An interrupted Work persisted its Paths: it resumes from the store even on a machine
        # where its old working directory is gone.
        import shutil

        shutil.rmtree(lk.dir / "data" / "works")
    # After SIGKILL of the kernel, the files are still in the Work's root here; restoring keeps them.
    resumed = lk("resume", "latest", check=True, timeout=60)
    started = resumed.stdout.strip().splitlines()[-1]
    assert started.startswith("started from [0, ")
    resumed_at = int(started.split(", ")[1].rstrip("]"))
    assert resumed_at >= 5, started


RUNNING_ORIGIN = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Producer(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.data = "lit://data/x.txt"
        self.version = 0
    def run(self):
        os.makedirs(os.path.dirname(self.data), exist_ok=True)
        for v in range(1, 4000):
            # Written whole then renamed, as checkpoints should be: a persist may read at any moment.
            with open(f"{self.data}.tmp", "w") as f:
                f.write(f"v{v}")
            os.replace(f"{self.data}.tmp", self.data)
            self.version = v
            time.sleep(0.01)

class Consumer(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.seen = []
    def run(self, data, at):
        # Transferred before run() from the running Producer: at least the version the flow saw.
        first = int(open(data).read()[1:])
        second = first
        for _ in range(20):  # again, later: the Producer persists what it has now
            time.sleep(0.3)
            data.get(overwrite=True)
            second = int(open(data).read()[1:])
            if second > first:
                break
        self.seen = [at, first, second]

class Idle(LightningWork):
    def __init__(self):
        super().__init__(start_with_flow=False)
        self.out = "lit://never/written.txt"
    def run(self):
        pass

class Asker(LightningWork):
    def run(self, path):
        import time
        t = time.monotonic()
        try:
            path.get()
        except FileNotFoundError as e:
            print("not found:", e, round(time.monotonic() - t, 1))

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.producer = Producer()
        self.consumer = Consumer()
        self.idle = Idle()
        self.asker = Asker()
        self.at = 0
    def run(self):
        self.producer.run()
        if not self.at and self.producer.version >= 20:
            self.at = self.producer.version
        if self.at:
            self.consumer.run(self.producer.data, at=self.at)
            self.asker.run(self.idle.out)
        if self.consumer.seen and self.asker.has_succeeded:
            self.stop(f"seen {self.consumer.seen}")

app = LightningApp(Root())
"""


def test_a_running_work_persists_its_paths_when_another_asks(lk):
    proc = lk("run", "app", lk.app(RUNNING_ORIGIN), check=True, timeout=120)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("seen ["), proc.stdout
    at, first, second = (int(x) for x in last[len("seen [") : -1].split(", "))
    # Nothing had been persisted when the Consumer started: the Producer was still in its run().
    assert first >= at >= 20 and second > first, last
    # The Idle Work never ran: nothing to ask it, and get() says at once what is missing.
    notfound = [line for line in proc.stdout.splitlines() if line.startswith("not found:")]
    assert notfound and "lit://never/written.txt" in notfound[0], proc.stdout
    assert float(notfound[0].split()[-1]) < 5, notfound
    records = [e["body"] for e in lk.json_lines("history", "latest") if e["type"] == "work.record"]
    answers = [r["data"] for r in records if r["kind"] == "path.persist_answered"]
    assert answers and all(a["persisted"] and a["path"] == "lit://data/x.txt" for a in answers), answers
    requested = [e for e in lk.json_lines("history", "latest") if e["type"] == "work.persist_requested"]
    assert {r["body"]["requester"] for r in requested} == {"root.consumer"}
    assert "lit://data/x.txt (asked by root.consumer" in lk("history", "latest", check=True).stdout


DRIVE_WAIT = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.storage import Drive

class Waiter(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.text = ""
    def run(self):
        Drive("lit://shared").get("late.txt", timeout=60)  # woken by the Putter's drive.put event
        self.text = open("late.txt").read()

class Putter(LightningWork):
    def run(self):
        time.sleep(0.5)
        with open("late.txt", "w") as f:
            f.write("here at last")
        Drive("lit://shared").put("late.txt")

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.waiter = Waiter()
        self.putter = Putter()
    def run(self):
        self.waiter.run()
        self.putter.run()
        if self.waiter.has_succeeded:
            self.stop(self.waiter.text)

app = LightningApp(Root())
"""


def test_drive_get_with_a_timeout_wakes_on_the_put(lk):
    proc = lk("run", "app", lk.app(DRIVE_WAIT), check=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "here at last"
    history = lk.json_lines("history", "latest")
    put = next(e for e in history if e["type"] == "work.record" and e["body"]["kind"] == "drive.put")
    done = next(
        e
        for e in history
        if e["type"] == "work.status_changed"
        and e["body"]["work"] == "root.waiter"
        and e["body"]["stage"] == "succeeded"
    )
    assert put["seq"] < done["seq"]
