"""``run()`` arguments that are not JSON travel pickled through the artifact store, as in Lightning App."""

from __future__ import annotations

APP = """
from dataclasses import dataclass
from lightning_kernel import LightningApp, LightningFlow, LightningWork

@dataclass
class Config:
    lr: float
    layers: tuple

class Train(LightningWork):
    def __init__(self):
        super().__init__()  # cache_calls: the same arguments run once
        self.seen = []
    def run(self, blob, config, *, extra=None):
        self.seen = self.seen + [f"{len(blob)} {blob[:3]!r} {type(config).__name__} {config.lr} {list(config.layers)} {extra}"]

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Train()
        self.rounds = 0
    def run(self):
        self.rounds += 1
        # A new but equal object each time: the same pickle, so the same call.
        self.w.run(b"\\x00\\x01\\x02" * 1000, Config(0.1, (4, 8)), extra={1, 2})
        if self.w.has_succeeded and self.rounds > 3:
            self.stop(f"ran {len(self.w.seen)}: {self.w.seen[0]}")

app = LightningApp(Root())
"""


def test_bytes_and_objects_reach_the_work_and_equal_ones_are_one_call(lk):
    proc = lk("run", "app", lk.app(APP), check=True)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "ran 1: 3000 b'\\x00\\x01\\x02' Config 0.1 [4, 8] {1, 2}", last
    requests = [e["body"] for e in lk.json_lines("history", "latest") if e["type"] == "work.run_requested"]
    assert len(requests) == 1
    blob, config = requests[0]["args"]
    assert blob["type"] == "__pickled__" and blob["class"] == "bytes" and len(blob["ref"]) == 64
    assert config["class"] == "Config" and requests[0]["kwargs"]["extra"]["class"] == "set"


def test_an_argument_that_cannot_be_pickled_fails_the_run_naming_it(lk):
    app = lk.app(
        """
        import threading
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def run(self, x, lock):
                pass

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W()
            def run(self):
                self.w.run(1, lock=threading.Lock())

        app = LightningApp(Root())
        """
    )
    proc = lk("run", "app", app)
    assert proc.returncode == 1
    assert "root.w.run(): argument 'lock' of type lock is neither JSON nor picklable" in proc.stderr
