"""The SDK outside any app: state rules, names, the in-process seed example."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from lightning_kernel import CloudCompute, LightningApp, LightningFlow, LightningWork, WorkStageStatus
from lightning_kernel.errors import StateError, WorkRunError


class Echo(LightningWork):
    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.seen: list[object] = []

    def run(self, *args: object, **kwargs: object) -> None:
        self.seen.append([list(args), kwargs])


def test_seed_example_prints_once_per_distinct_call(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(
        textwrap.dedent("""
        from lightning_kernel import LightningWork

        class ExampleWork(LightningWork):
            def run(self, *args, **kwargs):
                print(f"I received the following props: args: {args} kwargs: {kwargs}")

        work = ExampleWork(cache_calls=CACHE)
        work.run(value=1)
        work.run(value=1)
        work.run(value=1)
        work.run(value=1)
        work.run(value=1)
        work.run(value=10)
    """)
    )
    outputs = {}
    for cache in (True, False):
        src = script.read_text().replace("CACHE", str(cache))
        script.write_text(src)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
        outputs[cache] = out.splitlines()
        script.write_text(src.replace(f"cache_calls={cache}", "cache_calls=CACHE"))
    one = "I received the following props: args: () kwargs: {'value': 1}"
    ten = "I received the following props: args: () kwargs: {'value': 10}"
    assert outputs[True] == [one, ten]
    assert outputs[False] == [one] * 5 + [ten]


def test_in_process_status_and_cache():
    w = Echo()
    assert w.status.stage == WorkStageStatus.NOT_STARTED and not w.has_started
    w.run(1, a=2)
    w.run(1, a=2)
    assert w.seen == [[[1], {"a": 2}]]
    assert w.has_succeeded and w.status.timestamp is not None


def test_a_value_run_returns_is_dropped_as_in_lightning_app_and_the_log_points_to_payload(capsys):
    class Returns(LightningWork):
        def run(self) -> int:  # type: ignore[override]
            return 3

    work = Returns()
    assert work.run() is None
    assert work.has_succeeded
    err = capsys.readouterr().err
    assert "returned a int, which is dropped" in err and "lightning_kernel.Payload" in err


def test_an_argument_that_is_neither_json_nor_picklable_is_named():
    import threading

    class Takes(LightningWork):
        def run(self, x: object) -> None:  # type: ignore[override]
            pass

    with pytest.raises(WorkRunError, match=r"argument #0 of type lock is neither JSON nor picklable"):
        Takes().run(threading.Lock())


def test_non_json_attribute_names_component_and_attribute():
    class Bad(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.w = Echo()

    app = LightningApp(Bad())
    with pytest.raises(StateError) as info:
        app.root.w.thing = object()  # type: ignore[attr-defined]
    assert "root.w" in str(info.value)


def test_non_json_value_of_existing_attribute():
    class F(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.x = 1

    app = LightningApp(F())
    with pytest.raises(StateError, match=r"root\.x.*not JSON-serialisable"):
        app.root.x = {1, 2}  # type: ignore[assignment]
    with pytest.raises(StateError, match=r"NaN|not valid JSON"):
        app.root.x = float("nan")  # type: ignore[assignment]


def test_new_attribute_after_init_is_an_error_but_private_is_fine():
    class F(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.x = 1

    app = LightningApp(F())
    with pytest.raises(StateError, match=r"root\.y: a new public attribute was created outside __init__"):
        app.root.y = 2  # type: ignore[attr-defined]
    app.root._scratch = object()  # type: ignore[attr-defined]
    assert "_scratch" not in app.root.state["vars"]


def test_names_and_state_of_nested_tree():
    class Child(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.w = Echo()
            self.n = 0

    class Root(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.child = Child()
            self.w_1 = Echo(parallel=True, cloud_compute=CloudCompute("gpu"))
            self.label = ("a", 1)

    app = LightningApp(Root())
    root = app.root
    assert root.name == "root" and root.child.name == "root.child" and root.child.w.name == "root.child.w"
    assert sorted(app.components) == ["root", "root.child", "root.child.w", "root.w_1"]
    assert root.state == {
        "vars": {"label": ["a", 1]},
        "flows": {"child": {"vars": {"n": 0}, "flows": {}, "works": {"w": {"vars": {"seen": []}}}}},
        "works": {"w_1": {"vars": {"seen": []}}},
    }
    assert [w.name for w in root.works()] == ["root.child.w", "root.w_1"]
    assert list(root.flows) == ["root.child"]
    assert root.w_1.cloud_compute.name == "gpu" and root.w_1.parallel


def test_a_component_twice_in_the_tree_is_rejected():
    shared = Echo()

    class Root(LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.a = shared
            self.b = shared

    with pytest.raises(StateError, match="appear once"):
        LightningApp(Root())


def test_unknown_work_argument_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected"):
        Echo(paralel=True)
