"""Lightning App's ``lightning.app.testing.helpers``: components that do nothing, for tests."""

from __future__ import annotations

from typing import Any

from .._flow import LightningFlow
from .._work import LightningWork

__all__ = ["EmptyFlow", "EmptyWork"]


class EmptyFlow(LightningFlow):
    """A LightningFlow whose ``run`` does nothing."""

    def run(self) -> None:
        pass


class EmptyWork(LightningWork):
    """A LightningWork whose ``run`` does nothing."""

    def run(self, *args: Any, **kwargs: Any) -> None:
        pass
