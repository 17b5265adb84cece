"""Lightning App's module paths and components, without a kernel: what they re-export, Mount's
validation and how a Work's mounts are provided, pretty_state, the Tracer, scripts run in-process
(outside an app, as ``python app.py`` runs them), and the serving helpers' missing-extra errors."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import textwrap

import lightning_kernel
import pytest
from lightning_kernel.errors import MountError, ScriptError

REEXPORTS = {
    "lightning_kernel.core": {"LightningApp", "LightningFlow", "LightningWork"},
    "lightning_kernel.core.app": {"LightningApp"},
    "lightning_kernel.core.flow": {"LightningFlow"},
    "lightning_kernel.core.work": {"LightningWork"},
    "lightning_kernel.storage.path": {"Path"},
    "lightning_kernel.storage.drive": {"Drive"},
    "lightning_kernel.storage.payload": {"Payload"},
    "lightning_kernel.storage.mount": {"Mount"},
    "lightning_kernel.utilities.packaging.cloud_compute": {"CloudCompute"},
    "lightning_kernel.utilities.packaging.build_config": {"BuildConfig"},
}


@pytest.mark.parametrize("module", sorted(REEXPORTS))
def test_lightning_app_paths_re_export_the_same_objects(module):
    from lightning_kernel import storage

    mod = importlib.import_module(module)
    for name in REEXPORTS[module]:
        source = lightning_kernel if hasattr(lightning_kernel, name) else storage
        assert getattr(mod, name) is getattr(source, name)


def test_testing_imports_without_pytest():
    # A None entry in sys.modules makes `import pytest` fail, as on a host without it.
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import lightning_kernel.testing as t, lightning_kernel.testing.helpers as h\n"
        "assert t.EmptyFlow is h.EmptyFlow and t.EmptyWork is h.EmptyWork\n"
        "try:\n    t.ExecutorContract\nexcept ImportError:\n    print('contract needs pytest')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "contract needs pytest"


def test_empty_components_run_and_do_nothing():
    from lightning_kernel.testing import EmptyFlow, EmptyWork

    work = EmptyWork()
    work.run(1, k=2)
    assert work.has_succeeded
    EmptyFlow().run()


def test_pretty_state_drops_hidden_and_empty_parts():
    from lightning_kernel.utilities.app_helpers import pretty_state

    state = {
        "vars": {"a": 1, "_hidden": 2},
        "flows": {"child": {"vars": {"_x": 1}, "flows": {}, "works": {}}},
        "works": {"w": {"vars": {"done": True, "_calls": {}}}},
    }
    assert pretty_state(state) == {
        "vars": {"a": 1},
        "flows": {"child": {}},
        "works": {"w": {"vars": {"done": True}}},
    }


def test_enum_module_has_lightning_app_values():
    from lightning_kernel.utilities.enum import AppStage, WorkFailureReasons, WorkStageStatus, make_status

    assert WorkStageStatus.SUCCEEDED == "succeeded" and WorkFailureReasons.TIMEOUT == "timeout"
    assert AppStage("stopping") is AppStage.STOPPING
    status = make_status(WorkStageStatus.FAILED, message="boom")
    assert status["stage"] == "failed" and status["message"] == "boom" and "reason" not in status


# -- Mount ----------------------------------------------------------------------------------------


def test_mount_is_validated_as_lightning_app_does(tmp_path):
    from lightning_kernel.storage import Mount

    assert Mount("s3://bucket/data/").mount_path == "/data/data"
    with pytest.raises(ValueError, match="trailing slash"):
        Mount("s3://bucket/file.csv")
    with pytest.raises(ValueError, match="absolute path"):
        Mount("s3://bucket/data/", "relative/dir")
    with pytest.raises(ValueError, match="Unknown protocol"):
        Mount("gs://bucket/data/")
    local = Mount(f"file://{tmp_path}")
    assert local.is_local and local.folder == str(tmp_path) and local.mount_path == str(tmp_path)
    assert Mount(str(tmp_path), "/mnt/x").folder == str(tmp_path)


def test_cloud_compute_keeps_mounts_through_its_dict_form(tmp_path):
    from lightning_kernel import CloudCompute
    from lightning_kernel.storage import Mount

    compute = CloudCompute("cpu", mounts=[Mount("s3://b/x/"), Mount(str(tmp_path), "/mnt/y")])
    again = CloudCompute.from_dict(compute.to_dict())
    assert again.mounts == compute.mounts
    with pytest.raises(ValueError, match="appear twice"):
        CloudCompute(mounts=[Mount("s3://b/x/"), Mount("s3://c/x/")])
    with pytest.raises(TypeError, match="Mount or a list of Mounts"):
        CloudCompute(mounts="s3://b/x/")


def test_an_s3_mount_under_the_local_executor_says_it_needs_the_cloud_one(tmp_path):
    from lightning_kernel.storage import Mount
    from lightning_kernel.storage._mount import prepare_mounts

    target = tmp_path / "mnt" / "data"
    mounts = [Mount(str(tmp_path / "src"), str(target)), Mount("s3://bucket/set/")]
    (tmp_path / "src").mkdir()
    with pytest.raises(MountError, match=r"S3 mounts need the cloud executor.*'local' executor") as info:
        prepare_mounts(mounts, "root.w", "local")
    assert info.value.work == "root.w" and info.value.source == "s3://bucket/set/"
    assert not target.exists(), "nothing is linked when one mount cannot be provided"
    assert prepare_mounts(mounts[1], "root.w", "ray") == {}


def test_a_local_mount_leads_to_its_folder(tmp_path):
    from lightning_kernel.storage import Mount
    from lightning_kernel.storage._mount import prepare_mounts

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("data")
    target = tmp_path / "mnt" / "data"
    assert prepare_mounts(Mount(f"file://{src}", str(target)), "root.w", "local") == {str(target): str(src)}
    assert (target / "a.txt").read_text() == "data"
    prepare_mounts(Mount(str(src), str(target)), "root.w", "local")  # already in place: fine
    assert prepare_mounts(Mount(str(src)), "root.w", "local") == {str(src): str(src)}
    (tmp_path / "taken").mkdir()
    with pytest.raises(MountError, match="already exists"):
        prepare_mounts(Mount(str(src), str(tmp_path / "taken")), "root.w", "local")
    with pytest.raises(MountError, match="does not exist"):
        prepare_mounts(Mount(str(tmp_path / "gone")), "root.w", "local")


# -- Tracer and the script components, in-process ------------------------------------------------


def test_tracer_instruments_methods_while_the_script_runs(tmp_path):
    from lightning_kernel.utilities.tracer import Tracer

    script = tmp_path / "s.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from tracer_target import Target
            result = Target().double(4)
            argv = sys.argv[1:]
            """
        )
    )
    (tmp_path / "tracer_target.py").write_text(
        "class Target:\n    def double(self, x):\n        return 2 * x\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from tracer_target import Target  # type: ignore[import-not-found]

        tracer = Tracer()
        tracer.add_traced(
            Target,
            "double",
            pre_fn=lambda self, x: ("pre", (x + 1,), {}),
            post_fn=lambda self, r: ("post", r * 10),
        )
        res = tracer.trace(str(script), "--a", 1)
        assert res["result"] == 100 and res["argv"] == ["--a", "1"]
        (instance,) = res["tracer_res"]["Target"]
        assert [c["pre"] for c in instance["double"]] == ["pre"]
        assert Target().double(4) == 8, "the class is restored after the trace"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tracer_target", None)


def test_tracer_python_script_in_process(tmp_path, monkeypatch):
    from lightning_kernel.components import TracerPythonScript

    monkeypatch.chdir(tmp_path)
    (tmp_path / "make.py").write_text(
        "import os, sys\nopen('out.txt', 'w').write(os.environ['V'] + ' ' + ' '.join(sys.argv[1:]))\n"
    )
    work = TracerPythonScript("make.py", script_args="--a 1", outputs=["out.txt", "*.txt"], env={"V": "v"})
    work.run(params={"b": 2, "--c": 3})
    assert (tmp_path / "out.txt").read_text() == "v --a 1 --b=2 --c=3"
    assert str(work.paths["out.txt"]) == "out.txt" and [str(p) for p in work.paths["*.txt"]] == ["out.txt"]
    assert "V" not in os.environ, "the script's env is taken away after it ran"


def test_a_script_exit_code_fails_the_work(tmp_path, monkeypatch):
    from lightning_kernel.components import PopenPythonScript, TracerPythonScript

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "bad.py").write_text("import sys\nsys.exit(4)\n")
    TracerPythonScript("ok.py").run()
    with pytest.raises(ScriptError, match=r"bad\.py exited with code 4"):
        TracerPythonScript("bad.py").run()
    popen = PopenPythonScript("bad.py")
    with pytest.raises(ScriptError) as info:
        popen.run()
    assert info.value.exit_code == 4 and popen.exit_code == 4 and popen.pid
    with pytest.raises(FileNotFoundError, match=r"missing\.py"):
        PopenPythonScript("missing.py")


@pytest.mark.parametrize(("cls", "extra"), [("ServeGradio", "gradio"), ("ServeStreamlit", "streamlit")])
def test_serving_helpers_name_the_extra_they_need(cls, extra, monkeypatch):
    import lightning_kernel.components as components

    monkeypatch.setitem(sys.modules, extra, None)  # how the import system says it is not there

    class Served(getattr(components, cls)):  # type: ignore[misc]
        inputs = outputs = "text"

        def predict(self, *args):
            return args

        def build_model(self):
            return None

        def render(self):
            pass

    with pytest.raises(ModuleNotFoundError, match=f"pip install {extra}"):
        Served()


def test_build_config_is_kept_with_the_work_and_reads_the_requirements_beside_it(tmp_path):
    from lightning_kernel import BuildConfig

    (tmp_path / "requirements.txt").write_text(
        "flask>=2  # the server\n\nhttps://example.com/x.whl\nlocust\n"
    )
    (tmp_path / "work_mod.py").write_text(
        "from lightning_kernel import LightningWork\n"
        "class Served(LightningWork):\n"
        "    def run(self):\n"
        "        pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from work_mod import Served  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    work = Served(cloud_build_config=BuildConfig(), local_build_config=BuildConfig(["torch"], image="x:1"))
    assert work.cloud_build_config.requirements == ["flask>=2", "locust"]  # from the file beside the Work
    assert work.local_build_config == BuildConfig(["torch"], image="x:1")
    assert Served().cloud_build_config == BuildConfig()
    with pytest.raises(TypeError, match=re.escape("cloud_build_config=...) must be a BuildConfig, got 'x'")):
        Served(cloud_build_config="x")
    with pytest.raises(
        TypeError, match=re.escape("requirements=...) must be a list of strings, got 'flask'")
    ):
        BuildConfig("flask")  # type: ignore[arg-type]


def test_run_app_in_cloud_imports_and_says_there_is_no_cloud():
    from lightning_kernel.testing import run_app_in_cloud

    with pytest.raises(
        RuntimeError, match=re.escape("run_app_in_cloud('docs/app') ran the app in Lightning AI")
    ):
        run_app_in_cloud("docs/app")
