"""cache_calls=False: the same Work called again and again, beside a parallel one."""

from lightning_kernel import LightningApp, LightningFlow, LightningWork


class Count(LightningWork):
    def __init__(self):
        super().__init__(cache_calls=False)
        self.total = 0

    def run(self, n):
        self.total += n


class Side(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.seen = 0

    def run(self, tag):
        self.seen = len(tag)


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.count = Count()
        self.side = Side()
        self.rounds = 0
        self.log = []

    def run(self):
        self.side.run("side")
        if self.rounds < 3 and self.count.status.stage in ("not_started", "succeeded"):
            self.rounds += 1
            self.log = [*self.log, self.count.total]
            self.count.run(self.rounds)
        if self.rounds == 3 and self.count.has_succeeded and self.side.has_succeeded:
            self.stop(f"total {self.count.total}")


app = LightningApp(Root())
