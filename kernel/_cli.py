"""The ``lightning-kernel`` command.

Errors are one line on stderr and a non-zero exit (``--debug`` shows the traceback). Every flag has
an ``LK_*`` variable. Heavy modules are imported inside the commands that need them, so
``lightning-kernel runs`` starts fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from .errors import KernelError


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except KernelError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def _store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--artifacts", envvar="LK_ARTIFACTS", help="Artifact store URL (file://... or s3://bucket/prefix)."
    )(fn)
    fn = click.option(
        "--s3-endpoint",
        envvar="LK_S3_ENDPOINT_URL",
        help="Endpoint of an S3-compatible store (MinIO, Ceph...) for s3:// artifacts and Drives.",
    )(fn)
    fn = click.option(
        "--nats", envvar="LK_NATS", help="nats://host:port of an existing server (default: embedded)."
    )(fn)
    fn = click.option(
        "--nats-token",
        envvar="LK_NATS_TOKEN",
        help="Token of the --nats server (never needed for the embedded one).",
    )(fn)
    fn = click.option("--db", envvar="LK_DB", help="SQLAlchemy URL (default: sqlite in the data dir).")(fn)
    fn = click.option("--data-dir", envvar="LK_DATA_DIR", default=".lightning-kernel", show_default=True)(fn)
    fn = click.option(
        "--config",
        "config_file",
        envvar="LK_CONFIG",
        help="lightning-kernel.toml with the executors' tables (default: ./lightning-kernel.toml if there).",
    )(fn)
    return fn


def _placement_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where a run's Works go: ``--executor``, or ``--cloud`` for every one on Ray."""
    fn = click.option(
        "--cloud",
        is_flag=True,
        envvar="LK_CLOUD",
        help="Every Work on the ray executor (a Ray cluster: [executors.ray] in lightning-kernel.toml).",
    )(fn)
    return click.option(
        "--executor", envvar="LK_EXECUTOR", default=None, help="Executor for Works (default: local)."
    )(fn)


def _config(**kw: Any) -> Any:
    from ._config import Config

    return Config.from_env(
        data_dir=kw.get("data_dir"),
        db=kw.get("db"),
        nats=kw.get("nats"),
        artifacts=kw.get("artifacts"),
        s3_endpoint=kw.get("s3_endpoint"),
        executor="ray" if kw.get("cloud") else kw.get("executor"),
        nats_token=kw.get("nats_token"),
        config_file=kw.get("config_file"),
    )


def _warm(cfg: Any) -> Any:
    """Start, before the kernel's own imports (~0.1-0.2 s), what takes longest: the local executor's
    forkserver (the first Work waits for it) and the embedded nats-server (the run waits for it);
    the data dir is secured and locked first. Returns the ``EarlyStart`` for the kernel."""
    from ._datadir import early_start

    early = early_start(cfg)
    if cfg.executor == "local":
        from lightning_kernel.executors.local._executor import warm

        warm()
    return early


def _open(kw: dict[str, Any]) -> Any:
    from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

    return open_store(_config(**kw).db_url, create=False)


CLI_NAMES = {"at": "--at", "after": "--after", "limit": "--limit"}
"""How the SDK's errors name its parameters: as this command's options."""


def _client(kw: dict[str, Any]) -> Any:
    """The SDK's client for a command: the data dir's store, or ``--server``'s API."""
    from ._sdk import Client

    return Client(kw.get("server"), config=_config(**kw), param_names=CLI_NAMES)


def _server_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--server",
        envvar="LK_SERVER",
        default=None,
        help="Ask a running `lightning-kernel serve` (its token: LK_SERVER_TOKEN, or server.token in --data-dir).",
    )(fn)


@click.group()
@click.option("--debug", is_flag=True, envvar="LK_DEBUG", help="Show tracebacks.")
def cli(debug: bool) -> None:
    """Lightning Apps on an event-sourced kernel (NATS JetStream + SQL)."""


@cli.group()
def run() -> None:
    """Run something."""


def _env_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (KEY: letters, digits and _)", ctx, param)
        out[key] = value
    return out


@run.command("app", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("app_file")
@_store_options
@_placement_options
@click.option(
    "--server",
    envvar="LK_SERVER",
    default=None,
    help="Submit to a running `lightning-kernel serve` (its token: LK_SERVER_TOKEN, or server.token in --data-dir).",
)
@click.option("--name", default=None, help="The run's name (default: the app file's name).")
@click.option(
    "--env",
    "env",
    multiple=True,
    callback=_env_pairs,
    metavar="KEY=VALUE",
    help="An environment variable for the flow and every Work (again for more); recorded with the run.",
)
@click.option(
    "--app_args",
    "--app-args",
    "app_args",
    is_flag=True,
    help="What follows (but this command's own options) is the app file's sys.argv[1:], as in Lightning App.",
)
@click.option(
    "--no-ui", "no_ui", is_flag=True, envvar="LK_NO_UI", help="Serve no HTTP (no page, no flow API)."
)
@click.option(
    "--open-ui",
    "open_ui",
    is_flag=False,
    flag_value="true",
    default="false",
    metavar="[BOOL]",
    help="Open the run's page in a browser (where there is a display); `--open-ui false` as Lightning App.",
)
@click.pass_context
@_fail_cleanly
def run_app(
    ctx: click.Context,
    app_file: str,
    server: str | None,
    name: str | None,
    env: dict[str, str],
    app_args: bool,
    **kw: Any,
) -> None:
    """Run APP_FILE to the end, printing what the flow and the Works print.

    The file runs as __main__; `--app_args --lr 0.1` hands it arguments."""
    argv = list(ctx.args)
    if argv and not app_args:
        raise click.UsageError(
            f"unknown argument(s) {' '.join(argv)}: put the app file's own arguments after --app_args"
        )
    if server:
        from ._client import submit_and_follow

        sys.exit(submit_and_follow(_client({**kw, "server": server}), app_file, name, argv, env))
    cfg = _config(**kw)
    early = _warm(cfg)
    from ._embedded import run_embedded

    ui = not kw.pop("no_ui", False)
    open_ui = str(kw.pop("open_ui", "false")).strip().lower() in ("1", "true", "yes", "on")
    sys.exit(run_embedded(cfg, app_file, name, early, argv=argv, env=env, ui=ui, open_ui=open_ui))


@cli.command()
@click.option(
    "--config",
    "config_file",
    envvar="LK_CONFIG",
    help="lightning-kernel.toml with [executors.ssh] (default: ./lightning-kernel.toml if there).",
)
@_fail_cleanly
def hosts(config_file: str | None) -> None:
    """Check each SSH host of the config (reachable, host key, python, version, GPUs): a line each."""
    import asyncio

    from lightning_kernel.executors.ssh import parse
    from lightning_kernel.executors.ssh._hosts import check_all

    cfg = _config(config_file=config_file)
    table = cfg.executors.get("ssh")
    if not table or not table.get("hosts"):
        where = cfg.config_file or "./lightning-kernel.toml"
        raise KernelError(f"no SSH hosts configured: add [[executors.ssh.hosts]] tables to {where}")
    checks = asyncio.run(check_all(parse(table)))
    for c in checks:
        click.echo(c.line())
    if not all(c.ok for c in checks):
        sys.exit(1)


@cli.command()
@click.argument("run_id", metavar="RUN")
@_store_options
@_placement_options
@_server_option
@click.option(
    "--no-ui", "no_ui", is_flag=True, envvar="LK_NO_UI", help="Serve no HTTP (no page, no flow API)."
)
@_fail_cleanly
def resume(run_id: str, **kw: Any) -> None:
    """Rebuild RUN from its events and carry on (here, in the foreground; or on --server)."""
    if kw.get("server"):
        from ._client import follow_resumed

        sys.exit(follow_resumed(_client(kw), run_id))
    cfg = _config(**kw)
    early = _warm(cfg)
    from ._embedded import resume_embedded

    sys.exit(resume_embedded(cfg, run_id, early, ui=not kw.get("no_ui")))


@cli.command()
@click.argument("run_id", metavar="RUN")
@_store_options
@_server_option
@_fail_cleanly
def stop(run_id: str, **kw: Any) -> None:
    """Stop RUN: its Works stop and it ends as `stopped`."""
    client = _client(kw)
    info = client.stop(run_id)
    if client.url is not None:  # the local stop says where it asked, and how it ended, itself
        ended = info.status in ("succeeded", "failed", "stopped")
        click.echo(f"run {info.id} {'stopped' if ended else 'is still stopping'}", err=True)


class _Size(click.ParamType):
    """A number of bytes: ``1000``, ``64KB``, ``256MB``, ``1GB`` (binary units: 1 MB = 2**20 bytes)."""

    name = "size"
    _UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20}
    _UNITS |= {"g": 2**30, "gb": 2**30, "gib": 2**30}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().replace(" ", "")
        number = text.rstrip("kmgib")
        unit = text[len(number) :]
        if not number.isdigit() or unit not in self._UNITS or int(number) <= 0:
            self.fail(
                f"{value!r} is not a size: use bytes or a unit, e.g. 1000, 64KB, 256MB, 1GB", param, ctx
            )
        return int(number) * self._UNITS[unit]


@cli.command()
@click.option(
    "--host",
    envvar="LK_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; beyond loopback (0.0.0.0) every request needs the token.",
)
@click.option("--port", envvar="LK_PORT", default=7501, show_default=True, type=int)
@click.option(
    "--max-body",
    envvar="LK_MAX_BODY",
    default="256MB",
    show_default=True,
    type=_Size(),
    help="The largest request body (a submitted app) the API reads; larger ones get 413.",
)
@_store_options
@_placement_options
@_fail_cleanly
def serve(host: str, port: int, max_body: int, **kw: Any) -> None:
    """The long-running kernel, with its HTTP API at http://HOST:PORT/api.

    It prints a URL with its token (http://127.0.0.1:7501/view?token=...); the token is also in
    <data dir>/server.token, where `run app --server` finds it (or set LK_SERVER_TOKEN)."""
    from ._server import serve as run_server

    cfg = _config(**kw)
    cfg.echo = False
    sys.exit(run_server(cfg, host, port, max_body))


@cli.command()
@_store_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--limit", default=50, show_default=True)
@_server_option
@_fail_cleanly
def runs(as_json: bool, limit: int, **kw: Any) -> None:
    """List runs, newest first."""
    from ._views import print_runs

    print_runs(_client(kw), as_json, limit)


@cli.command()
@click.argument("run_id", metavar="RUN")
@_store_options
@click.option("--json", "as_json", is_flag=True)
@click.option("--after", default=0, help="Only events after this sequence number.")
@click.option("--limit", default=None, type=int)
@_server_option
@_fail_cleanly
def history(run_id: str, as_json: bool, after: int, limit: int | None, **kw: Any) -> None:
    """RUN's events, in order."""
    from ._views import print_history

    print_history(_client(kw), run_id, as_json, after, limit)


@cli.command()
@click.argument("run_id", metavar="RUN")
@_store_options
@click.option("--at", "at_seq", default=None, type=int, help="The state just after this event.")
@click.option("--json", "as_json", is_flag=True)
@_server_option
@_fail_cleanly
def state(run_id: str, at_seq: int | None, as_json: bool, **kw: Any) -> None:
    """RUN's state, folded from its events (at --at SEQ, or now)."""
    from ._views import print_state

    print_state(_client(kw), run_id, at_seq, as_json)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.argument("component", required=False)
@_store_options
@click.option("--json", "as_json", is_flag=True)
@_server_option
@_fail_cleanly
def logs(run_id: str, component: str | None, as_json: bool, **kw: Any) -> None:
    """What RUN's components printed (one COMPONENT: root, root.w_1, ...)."""
    from ._views import print_logs

    print_logs(_client(kw), run_id, component, as_json)


@cli.group()
def db() -> None:
    """The SQL store."""


@db.command("upgrade")
@_store_options
@_fail_cleanly
def db_upgrade(**kw: Any) -> None:
    """Bring the database schema to the newest migration."""
    from ._sql import upgrade  # type: ignore[import-not-found,unused-ignore]

    url = _config(**kw).db_url
    os.makedirs(_config(**kw).data_dir, exist_ok=True)
    upgrade(url)
    click.echo(f"database at {url.split('@')[-1]} is up to date")


@db.command("adopt-stream")
@_store_options
@_fail_cleanly
def db_adopt_stream(**kw: Any) -> None:
    """Record the streams NATS holds now (after its store was removed or reset).

    Past runs stay readable; runs that were not finished cannot resume. No kernel may be running on
    this data dir (or database) meanwhile."""
    from ._adopt import adopt_stream

    adopt_stream(_config(**kw))


def main() -> None:
    cli(prog_name="lightning-kernel")


# Commands defined in modules of their own register on ``cli`` as they are imported.
from . import _cli_command as _cli_command  # noqa: E402
from . import _cli_history as _cli_history  # noqa: E402
from . import _cli_replay as _cli_replay  # noqa: E402
