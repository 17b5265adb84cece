"""The public surface, pinned: a change here is a change users see."""

from __future__ import annotations

import subprocess
import sys

import lightning_kernel
import lightning_kernel.executors


def test_sdk_exports():
    assert lightning_kernel.__all__ == [
        "BuildConfig",
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


def test_components_and_lightning_app_module_paths():
    import lightning_kernel.components
    import lightning_kernel.components.python
    import lightning_kernel.components.serve
    import lightning_kernel.core
    import lightning_kernel.storage
    import lightning_kernel.testing
    import lightning_kernel.utilities.app_helpers
    import lightning_kernel.utilities.enum
    import lightning_kernel.utilities.tracer

    assert lightning_kernel.components.__all__ == [
        "Category",
        "FabricMultiNode",
        "Image",
        "LightningTrainerMultiNode",
        "LightningTrainerScript",
        "MultiNode",
        "Number",
        "PopenPythonScript",
        "PyTorchLightningScriptRunner",
        "PyTorchSpawnMultiNode",
        "PythonServer",
        "ServeGradio",
        "ServeStreamlit",
        "Text",
        "TracerPythonScript",
    ]
    assert lightning_kernel.components.Image is lightning_kernel.components.serve.Image
    assert lightning_kernel.components.python.__all__ == ["PopenPythonScript", "TracerPythonScript"]
    assert lightning_kernel.components.serve.__all__ == [
        "Category",
        "Image",
        "Number",
        "PythonServer",
        "ServeGradio",
        "ServeStreamlit",
        "Text",
    ]
    assert lightning_kernel.core.__all__ == ["LightningApp", "LightningFlow", "LightningWork"]
    assert lightning_kernel.storage.__all__ == [
        "ArtifactStore",
        "Drive",
        "Mount",
        "Path",
        "Payload",
        "StorageContext",
    ]
    assert lightning_kernel.testing.__all__ == [
        "EmptyFlow",
        "EmptyWork",
        "EventStoreContract",
        "ExecutorContract",
        "run_app_in_cloud",
    ]
    assert lightning_kernel.utilities.app_helpers.__all__ == ["pretty_state"]
    assert lightning_kernel.utilities.enum.__all__ == [
        "AppStage",
        "WorkFailureReasons",
        "WorkPendingReason",
        "WorkStageStatus",
        "make_status",
    ]
    assert lightning_kernel.utilities.tracer.__all__ == ["Tracer", "get_default_args"]
    paths = {
        "lightning_kernel.components.python.tracer": ["Tracer", "TracerPythonScript"],
        "lightning_kernel.components.python.popen": ["PopenPythonScript"],
        "lightning_kernel.components.serve.gradio_server": ["ServeGradio"],
        "lightning_kernel.components.serve.streamlit": ["ServeStreamlit"],
        "lightning_kernel.components.multi_node": [
            "FabricMultiNode",
            "LightningTrainerMultiNode",
            "MultiNode",
            "PyTorchSpawnMultiNode",
        ],
        "lightning_kernel.components.multi_node.base": ["MultiNode"],
        "lightning_kernel.components.multi_node.fabric": ["FabricMultiNode"],
        "lightning_kernel.components.multi_node.pytorch_spawn": ["PyTorchSpawnMultiNode"],
        "lightning_kernel.components.multi_node.trainer": ["LightningTrainerMultiNode"],
        "lightning_kernel.components.training": ["LightningTrainerScript", "PyTorchLightningScriptRunner"],
        "lightning_kernel.core.app": ["LightningApp"],
        "lightning_kernel.core.flow": ["LightningFlow"],
        "lightning_kernel.core.work": ["LightningWork"],
        "lightning_kernel.storage.path": ["Path"],
        "lightning_kernel.storage.drive": ["Drive"],
        "lightning_kernel.storage.payload": ["Payload"],
        "lightning_kernel.storage.mount": ["Mount"],
        "lightning_kernel.testing.helpers": ["EmptyFlow", "EmptyWork"],
        "lightning_kernel.utilities.packaging.cloud_compute": ["CloudCompute"],
        "lightning_kernel.utilities.commands": ["ClientCommand"],
        "lightning_kernel.utilities.commands.base": ["ClientCommand"],
        "lightning_kernel.structures": ["Dict", "List"],
    }
    import importlib

    assert {m: importlib.import_module(m).__all__ for m in paths} == paths


def test_components_import_no_optional_server_library():
    code = "import sys, lightning_kernel.components; print(' '.join(m for m in ('gradio', 'streamlit', 'pytest') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_flow_api_commands_and_frontend_surface():
    import importlib

    paths = {
        "lightning_kernel.api": ["Delete", "Get", "HttpMethod", "Post", "Put"],
        "lightning_kernel.commands": ["ClientCommand"],
        "lightning_kernel.frontend": [
            "Frontend",
            "JustPyFrontend",
            "PanelFrontend",
            "StaticWebFrontend",
            "StreamlitFrontend",
        ],
        "lightning_kernel.frontend.just_py": ["JustPyFrontend"],
        "lightning_kernel.frontend.frontend": ["Frontend"],
        "lightning_kernel.frontend.web": ["StaticWebFrontend"],
        "lightning_kernel.frontend.stream_lit": ["StreamlitFrontend"],
        "lightning_kernel.frontend.panel": ["PanelFrontend"],
    }
    assert {m: importlib.import_module(m).__all__ for m in paths} == paths
    code = (
        "import sys, lightning_kernel.api, lightning_kernel.commands, lightning_kernel.frontend; "
        "print(' '.join(m for m in ('starlette', 'uvicorn', 'pydantic', 'streamlit', 'panel', 'nats') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
