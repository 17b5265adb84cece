"""Two parallel Works that count; the flow sees every change and stops at five.

lightning-kernel run app examples/counter.py
"""

from lightning_kernel import LightningApp, LightningFlow, LightningWork


class Counter(LightningWork):
    def __init__(self):
        super().__init__(parallel=True, cache_calls=False)
        self.counter = 0

    def run(self):
        self.counter += 1


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w_1 = Counter()
        self.w_2 = Counter()

    def run(self):
        self.w_1.run()
        self.w_2.run()
        print("State:", self.w_1.counter, self.w_2.counter)
        if self.w_1.counter >= 5:
            self.stop("done")


app = LightningApp(Root())
