"""Two Works in a chain: the second runs on the first's result; the flow keeps a step counter."""

from lightning_kernel import LightningApp, LightningFlow, LightningWork


class Double(LightningWork):
    def __init__(self):
        super().__init__()
        self.out = ""

    def run(self, x):
        self.out = x * 2


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w_1 = Double()
        self.w_2 = Double()
        self.step = 0

    def run(self):
        self.w_1.run("a")
        if self.w_1.has_succeeded:
            self.step = 1
            self.w_2.run(self.w_1.out)
        if self.w_2.has_succeeded:
            self.step = 2
            self.stop("done " + self.w_2.out)


app = LightningApp(Root())
