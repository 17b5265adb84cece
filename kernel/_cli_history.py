"""``lightning-kernel diff`` and ``lightning-kernel fork``: comparing past states, and carrying a past
run on from one of its events. Commands of the ``cli`` group, registered when ``_cli`` imports this."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._cli import _config, _fail_cleanly, _open, _placement_options, _store_options, _warm, cli


@cli.command()
@click.argument("run_a", metavar="RUN")
@click.argument("run_b", metavar="[RUN_B]", required=False)
@_store_options
@click.option(
    "--from",
    "from_seq",
    type=int,
    default=None,
    help="The older state: just after this event (one run: default 0, before its first event; two runs: "
    "RUN's seq, default its latest).",
)
@click.option(
    "--to",
    "to_seq",
    type=int,
    default=None,
    help="The newer state: just after this event (default the latest; two runs: RUN_B's seq).",
)
@click.option("--json", "as_json", is_flag=True, help="The difference as one JSON object.")
@_fail_cleanly
def diff(
    run_a: str, run_b: str | None, from_seq: int | None, to_seq: int | None, as_json: bool, **kw: Any
) -> None:
    """What differs between two states: RUN at --from and at --to, or RUN and RUN_B (their latest).

    Components and their attributes, Work statuses and calls, and the Paths each Work persisted
    (size, sha256). Exits 0 whether or not they differ."""
    from ._diff import diff_runs, render

    store = _open(kw)
    try:
        out = diff_runs(store, run_a, run_b, from_seq, to_seq)
    finally:
        store.close()
    click.echo(json.dumps(out, separators=(",", ":")) if as_json else render(out))


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--at", "at_seq", type=int, required=True, help="The event of RUN the fork starts from.")
@click.option(
    "--app",
    "app_file",
    default=None,
    help="Run this app file's flow from there (the fixed code) instead of RUN's.",
)
@_store_options
@_placement_options
@_fail_cleanly
def fork(run_id: str, at_seq: int, app_file: str | None, **kw: Any) -> None:
    """A new run that starts as RUN's events up to --at SEQ, then goes on live, in the foreground.

    Calls that had succeeded by SEQ keep their results and Paths and do not run again; the rest run.
    Prints the new run's id first; exits as `resume` does (0 succeeded or stopped, 1 failed, 130 on
    Ctrl-C, which interrupts it: `resume` carries on)."""
    cfg = _config(**kw)
    early = _warm(cfg)
    from ._fork import fork_embedded

    sys.exit(fork_embedded(cfg, run_id, at_seq, app_file, early))
