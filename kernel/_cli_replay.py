"""``lightning-kernel replay``: re-run a past run's flow code against its history (``_replay``)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._cli import _config, _fail_cleanly, _open, _store_options, cli


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--app", "app_file", default=None, help="Replay this app file's flow code instead of the run's own."
)
@click.option(
    "--until", "until", default=None, type=int, help="Stop at the iteration that produced this event."
)
@click.option(
    "--pdb", "debug", is_flag=True, help="Run that iteration's root.run() under pdb (needs --until)."
)
@click.option("--output", "show", is_flag=True, help="Show what root.run() prints.")
@click.option("--json", "as_json", is_flag=True)
@_store_options
@_fail_cleanly
def replay(
    run_id: str, app_file: str | None, until: int | None, debug: bool, show: bool, as_json: bool, **kw: Any
) -> None:
    """Re-run RUN's flow code at every recorded iteration, against the recorded state, and compare
    what it would emit with what the run recorded. Starts no Work, publishes nothing.

    Exit 0 when nothing differs, 1 at the first nondeterminism (named: the event, the iteration, the
    component and what differs)."""
    from ._replay import Replayer, load_run_app

    if debug and until is None:
        raise click.UsageError("--pdb stops at the iteration that produced --until SEQ: give --until")
    store = _open(kw)
    info = store.run(run_id)
    records = store.events(info.id)
    app = load_run_app(_config(**kw), records, app_file)
    result = Replayer(app, echo=show or debug).replay(records, until=until, debug=debug)
    if as_json:
        click.echo(json.dumps(result.to_json(), default=str))
    else:
        for d in result.differences:
            click.echo(d.message)
        click.echo(result.summary())
    error = result.error()
    if error is not None:
        if not as_json:
            click.echo(f"NondeterminismError: {error}", err=True)
        sys.exit(1)
