"""A Work's result makes the flow raise: the run fails with the flow's traceback."""

from lightning_kernel import LightningApp, LightningFlow, LightningWork


class Give(LightningWork):
    def __init__(self):
        super().__init__()
        self.value = 0

    def run(self):
        self.value = 7


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.give = Give()

    def run(self):
        self.give.run()
        if self.give.has_succeeded:
            raise ValueError(f"the flow does not want {self.give.value}")


app = LightningApp(Root())
