"""The read-only commands (`runs`, `history`, `state`, `logs`): wrong input is an error that says
what the right input is, and a mistyped database path is never created."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

QUICK = """
from lightning_kernel import LightningApp, LightningFlow

class Quick(LightningFlow):
    def run(self):
        self.stop("quick")

app = LightningApp(Quick())
"""


def one_line_error(proc) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_state_at_outside_the_runs_events_is_an_error_naming_them(lk) -> None:
    lk("run", "app", lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"), check=True)
    lk("run", "app", lk.app(QUICK, "quick.py"), check=True)
    quick, counter = lk.json_lines("runs")

    last = counter["last_seq"]
    line = one_line_error(lk("state", counter["id"], "--at", str(last + 1)))
    assert f"--at {last + 1} is past run {counter['id']}'s last event (seq {last})" in line
    assert lk.state(counter["id"], at=last)["run"]["status"] == "succeeded"

    for at in ("0", "-3"):
        line = one_line_error(lk("state", counter["id"], "--at", at))
        assert f"--at {at}: event sequence numbers start at 1" in line
        assert "first event comes later" not in line

    first = lk.json_lines("history", quick["id"])[0]
    assert first["type"] == "run.created" and first["seq"] > 1  # sequence numbers are shared by runs
    line = one_line_error(lk("state", quick["id"], "--at", "1"))
    assert f"before run {quick['id']}'s first event (seq {first['seq']})" in line
    assert lk.state(quick["id"], at=first["seq"])["run"]["name"] == "quick"


def test_runs_counts_each_runs_own_events(lk) -> None:
    """Sequence numbers are shared by runs: a run's event count is not its last seq."""
    for _ in range(2):
        lk("run", "app", lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"), check=True)
    runs = lk.json_lines("runs")
    assert runs[0]["last_seq"] > runs[0]["events"] > 0, runs[0]
    for run in runs:
        assert run["events"] == len(lk.json_lines("history", run["id"])), run
    table = lk("runs", check=True).stdout.splitlines()
    assert table[0].split()[-1] == "EVENTS"
    assert [line.split()[-1] for line in table[1:]] == [str(r["events"]) for r in runs]


def test_logs_of_an_unknown_component_names_the_runs_components(lk) -> None:
    lk("run", "app", lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"), check=True)
    line = one_line_error(lk("logs", "latest", "root.nope"))
    assert "has no component 'root.nope'; its components are: root, root.w_1, root.w_2" in line
    assert lk("logs", "latest", "root", check=True).stdout.splitlines()[-1] == "done"
    assert lk("logs", "latest", "root.w_1", check=True).stdout == ""  # a known one that printed nothing


@pytest.mark.parametrize(
    "args",
    [["runs"], ["history", "latest"], ["state", "latest"], ["logs", "latest"], ["logs", "latest", "root"]],
)
def test_a_mistyped_sqlite_path_is_never_created(lk, args: list[str]) -> None:
    typo = lk.dir / "dtaa"
    line = one_line_error(lk(*args, "--data-dir", str(typo)))
    assert f"no database at {typo / 'kernel.db'} (--db / --data-dir" in line
    assert not typo.exists()
    db = lk.dir / "elsewhere" / "kernel.db"
    line = one_line_error(lk(*args, "--db", f"sqlite:///{db}"))
    assert f"no database at {db} (--db / --data-dir" in line
    assert not db.parent.exists()


# Python refuses an import of a module whose sys.modules entry is None: psycopg as if not installed.
_WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from lightning_kernel._cli import main; main()"


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://lk:secret@127.0.0.1:1/lk", "postgresql://127.0.0.1:1/lk"]
)
def test_a_missing_psycopg_says_what_to_install(lk, url: str) -> None:
    import subprocess

    for args in (["runs"], ["db", "upgrade"]):
        proc = subprocess.run(
            [sys.executable, "-c", _WITHOUT_PSYCOPG, *args, "--db", url],
            capture_output=True,
            text=True,
            env=lk.env,
            cwd=lk.dir,
            timeout=90,
        )
        line = one_line_error(proc)
        assert "needs the psycopg driver, which is not installed" in line
        assert "pip install 'lightning-kernel[postgres]'" in line
        assert "cannot reach" not in line and "secret" not in line
