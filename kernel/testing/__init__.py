"""Contract tests that third-party stores (and executors) subclass to prove they behave."""

from ._executor import ExecutorContract
from ._store import EventStoreContract

__all__ = ["EventStoreContract", "ExecutorContract"]
