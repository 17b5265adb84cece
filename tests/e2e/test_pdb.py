"""``lightning_kernel.pdb.set_trace()`` in a Work: pdb on the terminal `run app` runs in (a real pty,
as a user's), though the Work runs in a worker process; without a terminal, a clear error."""

from __future__ import annotations

import os
import pty
import select
import time

from conftest import EXE

APP = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.pdb import set_trace


class Debugged(LightningWork):
    def __init__(self):
        super().__init__()
        self.seen = ""

    def run(self, word):
        secret = word * 2
        set_trace()
        self.seen = secret


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.work = Debugged()

    def run(self):
        self.work.run("ab")
        if self.work.has_succeeded:
            self.stop(f"seen {self.work.seen}")


app = LightningApp(Root())
"""


class Terminal:
    """A command in a pty of its own (its controlling terminal), read until what is waited for."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the command, in the pty's session
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.seen = b""

    def wait_for(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready:
                raise AssertionError(
                    f"no {text!r} on the terminal in {timeout} s:\n{self.seen.decode(errors='replace')}"
                )
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # the command ended: the pty is closed
                chunk = b""
            if not chunk:
                raise AssertionError(
                    f"the command ended before {text!r}:\n{self.seen.decode(errors='replace')}"
                )
            self.seen += chunk

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with_output, _, _ = select.select([self.fd], [], [], 0.2)
            if with_output:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        raise AssertionError(f"still running after {timeout} s:\n{self.seen.decode(errors='replace')}")


def test_set_trace_in_a_work_debugs_on_the_terminal_of_run_app(lk):
    app = lk.app(APP)
    term = Terminal([*EXE, "run", "app", app, "--no-ui"], lk.env, str(lk.dir))
    term.wait_for(b"(Pdb) ")
    term.type("p secret")
    term.wait_for(b"'abab'")
    term.type("secret = 'changed'")
    term.type("c")
    assert term.exit_code() == 0, term.seen.decode(errors="replace")
    assert b"seen changed" in term.seen  # the Work went on with what was set in the debugger
    assert lk.state()["root"]["works"]["work"]["vars"]["seen"] == "changed"


def test_set_trace_without_a_terminal_says_so(lk):
    proc = lk("run", "app", lk.app(APP), "--no-ui", timeout=120)
    assert proc.returncode != 0
    assert "lightning_kernel.pdb.set_trace(): process" in proc.stderr and "has no terminal" in proc.stderr
