"""The app file runs as Lightning App runs it: as ``__main__``, with ``--app_args`` and ``--env``."""

from __future__ import annotations

import sys

ARGS = """
import os
from argparse import ArgumentParser
from lightning_kernel import LightningApp, LightningFlow, LightningWork

parser = ArgumentParser()
parser.add_argument("--greeting", default="hi")
parser.add_argument("--times", type=int, default=1)
args = parser.parse_args()  # on every worker too: the file runs there with the same arguments

class Echo(LightningWork):
    def __init__(self):
        super().__init__()
        self.said = ""
    def run(self, text):
        self.said = f"{text} {os.environ.get('WHO', '?')} {args.times}"

class Root(LightningFlow):
    def __init__(self, greeting, times):
        super().__init__()
        self.text = " ".join([greeting] * times)
        self.w = Echo()
    def run(self):
        self.w.run(self.text)
        if self.w.has_succeeded:
            self.stop(f"{self.w.said} / flow: WHO={os.environ.get('WHO')}")

if __name__ == "__main__":
    app = LightningApp(Root(args.greeting, args.times))
"""


def test_app_args_reach_the_file_as_sys_argv_and_env_every_work(lk):
    app = lk.app(ARGS)
    proc = lk("run", "app", app, "--app_args", "--greeting", "hello", "--times", "2", "--env", "WHO=world")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "hello hello world 2 / flow: WHO=world"
    created = lk.json_lines("history", "latest")[0]
    assert created["body"]["argv"] == ["--greeting", "hello", "--times", "2"]
    assert created["body"]["env"] == {"WHO": "world"}
    # Without --app_args the file gets no arguments: its defaults.
    proc = lk("run", "app", app, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "hi ? 1 / flow: WHO=None"


def test_arguments_without_app_args_and_bad_env_are_clear_errors(lk):
    app = lk.app(ARGS)
    proc = lk("run", "app", app, "--greeting", "x")
    assert proc.returncode == 2 and "put the app file's own arguments after --app_args" in proc.stderr
    proc = lk("run", "app", app, "--env", "NOEQUALS")
    assert proc.returncode == 2 and "'NOEQUALS' is not KEY=VALUE" in proc.stderr
    assert not (lk.dir / "data" / "kernel.db").exists(), "nothing may start for a command line that is wrong"


def test_the_file_is_main_and_its_classes_keep_one_name(lk):
    app = lk.app(
        """
        from lightning_kernel import LightningApp, LightningFlow

        class Root(LightningFlow):
            def run(self):
                self.stop(f"module {type(self).__module__.startswith('lk_app_')} main {__name__}")

        print("as main:", __name__ == "__main__")
        app = LightningApp(Root())
        """
    )
    proc = lk("run", "app", app, check=True)
    assert "as main: True" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("module True main lk_app_")


def test_a_work_spawns_processes_running_a_function_of_the_app_file(lk):
    """multiprocessing's spawn (torch.multiprocessing.spawn, as Lightning App's DDP example uses it)
    pickles the function by its module's name: a fresh process imports the app file under it."""
    app = lk.app(
        """
        import multiprocessing

        from lightning_kernel import LightningApp, LightningFlow, LightningWork


        def square(rank, out):
            out.put((rank, rank * rank, __name__))


        class Spawner(LightningWork):
            def __init__(self):
                super().__init__()
                self.squares = []

            def run(self):
                ctx = multiprocessing.get_context("spawn")
                out = ctx.Queue()
                procs = [ctx.Process(target=square, args=(r, out)) for r in range(2)]
                for p in procs:
                    p.start()
                got = sorted(out.get(timeout=60) for _ in procs)
                for p in procs:
                    p.join()
                    assert p.exitcode == 0, p.exitcode
                self.squares = [sq for _, sq, _ in got]
                print("children knew the file as", {name.startswith("lk_app_") for _, _, name in got})


        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.spawner = Spawner()

            def run(self):
                self.spawner.run()
                if self.spawner.has_succeeded:
                    self.stop(f"squares {self.spawner.squares}")


        if __name__ == "__main__":
            app = LightningApp(Root())
        """
    )
    proc = lk("run", "app", app, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "children knew the file as {True}" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "squares [0, 1]"


def test_an_app_file_named_like_a_package_it_imports_gets_the_package(lk):
    """Its folder goes at the end of sys.path, as Lightning App put it (a docs sample is xgboost.py).
    In a folder of its own: ``python -m`` (the tests' way to run the command) puts the cwd first."""
    (lk.dir / "apps").mkdir()
    app = lk.app(
        """
        from croniter import croniter

        from lightning_kernel import LightningApp, LightningFlow

        class Root(LightningFlow):
            def run(self):
                self.stop(f"next {croniter('0 6 * * *', 0).get_next(float):.0f}")

        app = LightningApp(Root())
        """,
        name="apps/croniter.py",
    )
    proc = lk("run", "app", app, "--no-ui", check=True)
    assert proc.stdout.strip().splitlines()[-1].startswith("next ")


DISPATCHED = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.runners import MultiProcessRuntime


class Hello(LightningWork):
    def run(self, who):
        print(f"hello {who}")


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.hello = Hello()

    def run(self):
        self.hello.run("runtime")
        if self.hello.has_succeeded:
            self.stop("dispatched")


app = LightningApp(Root())
MultiProcessRuntime(app, start_server=False).dispatch()
print("after dispatch")
"""


def test_multi_process_runtime_dispatch_runs_the_app_from_python_app_py(lk):
    """Lightning App's debugging guide: `python app.py` with MultiProcessRuntime(app).dispatch() at its
    end runs the app (the flow in this process); under the kernel's own loading it does nothing."""
    import subprocess

    app = lk.app(DISPATCHED)
    proc = subprocess.run(
        [sys.executable, app], capture_output=True, text=True, env=lk.env, cwd=lk.dir, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "hello runtime" in proc.stdout and "dispatched" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "after dispatch"
    [run] = lk.json_lines("runs")
    assert run["status"] == "succeeded"
    again = lk("run", "app", app, "--no-ui", check=True)  # the kernel runs it: dispatch() is a no-op
    assert again.stdout.count("hello runtime") == 1
