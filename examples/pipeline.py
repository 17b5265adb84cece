"""A sequential pipeline under a nested flow: each step waits for the one before it.

lightning-kernel run app examples/pipeline.py
"""

from lightning_kernel import LightningApp, LightningFlow, LightningWork


class Square(LightningWork):
    def __init__(self):
        super().__init__()
        self.result = None

    def run(self, x):
        self.result = x * x
        print(f"{self.name}: {x}^2 = {self.result}")


class Stage(LightningFlow):
    def __init__(self):
        super().__init__()
        self.first = Square()
        self.second = Square()

    def run(self, x):
        self.first.run(x)
        self.second.run(self.first.result)


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.stage = Stage()

    def run(self):
        self.stage.run(3)
        self.stop(f"3^4 = {self.stage.second.result}")


app = LightningApp(Root())
