"""Fixtures of the Trainer tests. Models and datasets live in ``helpers.py`` (a plain module)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
