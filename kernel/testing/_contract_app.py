"""The app the executor contract runs: importable wherever ``lightning_kernel`` is installed, so a
worker on another machine (SSH, a cluster) can unpickle it."""

from __future__ import annotations

import os
import time

from .._app import LightningApp
from .._flow import LightningFlow
from .._work import LightningWork


class Counter(LightningWork):
    """Counts its calls and reports the environment variable the contract sets through the spec."""

    def __init__(self) -> None:
        super().__init__(parallel=True, cache_calls=False)
        self.count = 0
        self.env_seen = ""
        self.pid = 0

    def run(self) -> None:
        self.count += 1
        self.env_seen = os.environ.get("LK_CONTRACT_VALUE", "")
        self.pid = os.getpid()
        print(f"counted {self.count}")


class Sleeper(LightningWork):
    """Runs until it is stopped."""

    def __init__(self) -> None:
        super().__init__(parallel=True)
        self.started = False

    def run(self, seconds: float = 600.0) -> None:
        self.started = True
        time.sleep(seconds)


class Crasher(LightningWork):
    """Its process ends with ``code`` in the middle of the call, as a crash would end it."""

    def __init__(self) -> None:
        super().__init__(parallel=True)

    def run(self, code: int = 3) -> None:
        os._exit(code)


class ContractFlow(LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.counter = Counter()
        self.sleeper = Sleeper()
        self.crasher = Crasher()

    def run(self) -> None:  # the contract drives the Works itself
        pass


def make_app() -> LightningApp:
    return LightningApp(ContractFlow())
