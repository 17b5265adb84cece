"""The public surface, pinned: a change here is a change users see."""

from __future__ import annotations

import subprocess
import sys

import lightning_kernel
import lightning_kernel.executors


def test_sdk_exports():
    assert lightning_kernel.__all__ == [
        "Client",
        "CloudCompute",
        "Drive",
        "LightningApp",
        "LightningFlow",
        "LightningWork",
        "Path",
        "Payload",
        "Replayer",
        "WorkStageStatus",
        "WorkStatus",
    ]


def test_executor_plugin_surface():
    assert lightning_kernel.executors.__all__ == [
        "CAUSES",
        "Executor",
        "WorkerExit",
        "WorkerHandle",
        "WorkerSpec",
        "hookimpl",
        "hookspec",
        "lk_executors",
    ]


def test_the_executor_surface_imports_nothing_heavy():
    code = "import sys, lightning_kernel.executors; print(' '.join(m for m in ('nats', 'sqlalchemy', 'cloudpickle', 'lightning_kernel._worker') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_importing_the_sdk_stays_light():
    code = "import sys, lightning_kernel; print(' '.join(m for m in ('torch', 'ray', 'asyncssh', 's3fs', 'boto3', 'sqlalchemy', 'nats') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
