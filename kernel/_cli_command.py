"""``lightning-kernel run command NAME [--arg value ...]``: a command of a live run's flow.

The server is ``--server``, else the one up in the data dir (``run app`` or ``serve`` write
``<data dir>/server.json``); the run is ``--run``, else the newest run that server drives. A command
whose handler is a method gets the ``--arg value`` pairs as its arguments (the handler converts them
to its parameters' types) and its answer is printed; a ``ClientCommand`` is loaded from the app's file
and its ``run()`` runs here, with ``sys.argv`` the command's own arguments. ``--help`` lists the
run's commands, or one command's arguments.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from typing import Any

import click

from ._cli import _fail_cleanly, run
from ._commands import ClientCommand, get_json, post_json
from .errors import KernelError


def _server_of(server: str | None, data_dir: str) -> tuple[str, dict[str, str]]:
    """The server's URL and the headers that carry its token (when there is one to send)."""
    token = os.environ.get("LK_SERVER_TOKEN")
    token_file = os.path.join(data_dir, "server.token")
    if token is None and os.path.exists(token_file):
        with open(token_file) as f:
            token = f.read().strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if server:
        return server.rstrip("/"), headers
    path = os.path.join(data_dir, "server.json")
    try:
        with open(path) as f:
            address = json.load(f)
        os.kill(int(address["pid"]), 0)
        return str(address["url"]).rstrip("/"), headers
    except (OSError, ValueError, KeyError):
        raise KernelError(
            f"no `lightning-kernel run app` (nor `serve`) serves a run from data dir {data_dir}: start one, "
            "or name its server with --server URL"
        ) from None


def _answer(status: int, answer: Any, what: str) -> Any:
    if status != 200:
        detail = answer.get("error", answer) if isinstance(answer, dict) else answer
        raise KernelError(f"{what}: HTTP {status}: {detail}")
    return answer


def _listing(commands: list[dict[str, Any]], run_id: str) -> str:
    lines = [f"Commands of run {run_id} (lightning-kernel run command NAME [--arg value ...]):"]
    for c in commands:
        lines.append(
            f"  {c['name']:<20} {c['description'].splitlines()[0] if c['description'] else ''}".rstrip()
        )
    if not commands:
        lines.append("  (none: its flows define no configure_commands())")
    return "\n".join(lines)


def _usage(c: dict[str, Any]) -> str:
    if c["client"] is not None:
        return f"{c['name']}: {c['description'] or 'a ClientCommand'} (its own arguments: see its run())"
    args = " ".join(
        f"--{p['name']} {p['type'].upper()}" if p["required"] else f"[--{p['name']} {p['type'].upper()}]"
        for p in c["params"]
    )
    lines = [f"Usage: lightning-kernel run command {c['name']} {args}".rstrip()]
    if c["description"]:
        lines.append(f"\n  {c['description']}\n")
    for p in c["params"]:
        default = "" if p["required"] else f" (default: {json.dumps(p['default'])})"
        lines.append(f"  --{p['name']:<18} {p['type']}{default}")
    return "\n".join(lines)


def _pairs(args: list[str], c: dict[str, Any]) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` (``--flag`` alone: true) as the handler's arguments."""
    known = {p["name"]: p for p in c["params"]}
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise KernelError(f"command {c['name']}: {arg!r} is not an --arg; {_usage(c)}")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_") if key not in known else key
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = "true"
        if key not in known:
            raise KernelError(f"command {c['name']} has no argument --{key}; {_usage(c)}")
        out[key] = value
        i += 1
    missing = [p for p in known if known[p]["required"] and p not in out]
    if missing:
        raise KernelError(f"command {c['name']} needs {', '.join('--' + m for m in missing)}; {_usage(c)}")
    return out


def _client_command(c: dict[str, Any]) -> type[ClientCommand]:
    """The ``ClientCommand`` class of ``c``, from the app's file (its copy from the server when this
    machine's differs or is not there); the app file's folder is on ``sys.path`` for its imports."""
    client = c["client"]
    path = client["file"]
    try:
        with open(path) as f:
            same = f.read() == client["source"]
    except OSError:
        same = False
    if not same:
        folder = tempfile.mkdtemp(prefix="lk-command-")
        path = os.path.join(folder, os.path.basename(client["file"]))
        with open(path, "w") as f:
            f.write(client["source"])
    sys.path.insert(0, os.path.dirname(client["file"]))
    spec = importlib.util.spec_from_file_location(f"lk_command_{c['name']}", path)
    if spec is None or spec.loader is None:
        raise KernelError(f"command {c['name']}: {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise KernelError(
            f"command {c['name']}: importing {client['file']} failed: {type(exc).__name__}: {exc}"
        ) from exc
    cls = getattr(module, client["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, ClientCommand)):
        raise KernelError(f"command {c['name']}: {client['file']} has no ClientCommand {client['class']}")
    return cls


@run.command(
    "command",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("name", required=False)
@click.option(
    "--run", "run_id", default="latest", envvar="LK_RUN", help="The run (default: the newest live one)."
)
@click.option("--server", envvar="LK_SERVER", default=None, help="The server that drives the run.")
@click.option("--data-dir", envvar="LK_DATA_DIR", default=".lightning-kernel", show_default=True)
@click.pass_context
@_fail_cleanly
def run_command(ctx: click.Context, name: str | None, run_id: str, server: str | None, data_dir: str) -> None:
    """Run command NAME of a live run's flow (configure_commands()), with its --arg value pairs.

    `lightning-kernel run command --help` lists the run's commands; `run command NAME --help`, one's
    arguments."""
    args = list(ctx.args)
    wants_help = name in (None, "--help", "-h") or "--help" in args
    try:
        url, headers = _server_of(server, data_dir)
    except KernelError as exc:
        if name not in (None, "--help", "-h"):
            raise
        click.echo(f"{ctx.get_help()}\n\n{exc}")
        return
    status, got = get_json(f"{url}/runs/{run_id}/commands", headers)
    listed = _answer(status, got, f"the commands of run {run_id} at {url}")
    commands = {c["name"]: c for c in listed["commands"]}
    run_id = listed["run"]
    if name in (None, "--help", "-h"):
        click.echo(f"{ctx.get_help()}\n\n{_listing(listed['commands'], run_id)}")
        return
    assert name is not None
    found = commands.get(name.replace(" ", "_"))
    if found is None:
        raise KernelError(f"run {run_id} has no command {name!r}\n{_listing(listed['commands'], run_id)}")
    if wants_help and found["client"] is None:
        click.echo(_usage(found))
        return
    app_url = f"{url}/runs/{run_id}"
    if found["client"] is not None:
        command = _client_command(found)(None)
        command._setup(found["name"], app_url, headers)
        sys.argv = [found["name"], *args]
        command.run()
        return
    status, answer = post_json(f"{app_url}/command/{found['name']}", _pairs(args, found), headers)
    answer = _answer(status, answer, f"command {found['name']} of run {run_id}")
    click.echo(answer if isinstance(answer, str) else json.dumps(answer, indent=2))
