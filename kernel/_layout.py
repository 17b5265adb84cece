"""A run's page: the tabs of its root flow's ``configure_layout()``, and its static frontends' files.

``configure_layout()`` may return, as in Lightning App:

- a ``Frontend`` (``StaticWebFrontend(folder)``): the flow's own UI, the page's one tab;
- a dict ``{"name": ..., "content": ...}``, or a list of them: one tab each, whose content is a Work
  (its ``url``, once its worker reported it), a URL, or a child flow (its own ``configure_layout()``
  frontend);
- nothing: a tab per Work that serves (has a ``url``).

A ``StreamlitFrontend`` or ``PanelFrontend`` has a server of its own, started by the kernel with the
run's HTTP server (``_frontend_serve``): its tab frames ``/runs/<run>/ui/<flow>/``, which leads to that
server, and says so when the server ended.

The layout is read from the live objects of the run each time the page is asked for, so a Work's
``url`` appears as soon as the Work reported it (the page reloads itself while a tab waits for one).
A static frontend's files are served from its folder only: a path that resolves (links followed)
outside it is refused.
"""

from __future__ import annotations

import html
import inspect
import os
from dataclasses import dataclass
from typing import Any

from ._flow import LightningFlow, configured
from ._work import LightningWork
from .frontend import Frontend, PanelFrontend, StaticWebFrontend, StreamlitFrontend

SERVED_KINDS = (StreamlitFrontend, PanelFrontend)
"""The frontends that a server of their own serves (``_frontend_serve``)."""
ServedFrontend = StreamlitFrontend | PanelFrontend


@dataclass(frozen=True)
class Tab:
    name: str
    kind: str
    """``frontend`` (a frontend of ours: static files, or the way to its own server), ``url``, ``work``,
    or ``note`` (nothing to frame)."""
    url: str = ""
    note: str = ""


def frontend_of(flow: Any) -> Frontend | None:
    """The ``Frontend`` that ``flow.configure_layout()`` returns, None when it returns something else."""
    if not isinstance(flow, LightningFlow):
        return None
    got = configured(flow, "configure_layout")
    if isinstance(got, Frontend):
        got.flow = flow
        return got
    return None


def work_url(work: Any, state: dict[str, Any] | None = None) -> str:
    """The Work's ``url``: from the state folded so far (the endpoint its worker reported), else
    from the live object (as the flow's last iteration saw it)."""
    if state:
        known = (state.get("works") or {}).get(work.name) or {}
        url = (known.get("endpoint") or {}).get("url") or known.get("url")
        if url:
            return str(url)
    return str(getattr(work, "url", "") or "")


def serves(work: Any, state: dict[str, Any] | None = None) -> bool:
    """Whether a server of the Work accepted connections (``work.endpoint`` with ``listening``)."""
    known = ((state or {}).get("works") or {}).get(work.name) or {}
    endpoint = known.get("endpoint") or getattr(work, "_lk_endpoint", None) or {}
    return bool(endpoint.get("listening")) and bool(work_url(work, state))


def tabs_of(app: Any, prefix: str, state: dict[str, Any] | None = None) -> list[Tab]:
    """The tabs of ``app``'s page; frontend URLs start with ``prefix`` (``/runs/<run>``)."""
    root = app.root
    if not isinstance(root, LightningFlow):
        return []
    try:
        got = configured(root, "configure_layout")
    except Exception as exc:
        return [
            Tab("layout", "note", note=f"{root.name}.configure_layout() raised {type(exc).__name__}: {exc}")
        ]
    if got is None:
        # No layout: a tab for each Work that serves (its server accepted a connection), not for
        # every Work, though each has a URL.
        return [Tab(w.name, "work", work_url(w, state)) for w in app.works.values() if serves(w, state)]
    if isinstance(got, Frontend):
        got.flow = root
        return [_frontend_tab(root.name, got, root, prefix)]
    entries = [got] if isinstance(got, dict) else list(got)
    tabs: list[Tab] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "content" not in entry:
            tabs.append(
                Tab(f"tab {i + 1}", "note", note=f"a layout entry must be {{'name', 'content'}}: {entry!r}")
            )
            continue
        name = str(entry.get("name") or f"tab {i + 1}")
        tabs.append(_tab(name, entry["content"], prefix, state))
    return tabs


def live_frontends(app: Any) -> list[tuple[LightningFlow, ServedFrontend]]:
    """The frontends of ``app``'s layout that need a server of their own, with their flows: the root
    flow's, and those of the flows its tabs show. A ``configure_layout()`` that raises gives none
    (its tab says why)."""
    root = app.root
    try:
        got = configured(root, "configure_layout") if isinstance(root, LightningFlow) else None
    except Exception:
        return []
    if isinstance(got, Frontend):
        got.flow = root
        return [(root, got)] if isinstance(got, SERVED_KINDS) else []
    found: list[tuple[LightningFlow, ServedFrontend]] = []
    entries = [got] if isinstance(got, dict) else got if isinstance(got, (list, tuple)) else []
    for entry in entries:
        content = entry.get("content") if isinstance(entry, dict) else None
        try:
            frontend = frontend_of(content) if isinstance(content, LightningFlow) else content
        except Exception:
            continue
        if isinstance(frontend, SERVED_KINDS) and isinstance(frontend.flow, LightningFlow):
            found.append((frontend.flow, frontend))
    return found


def _tab(name: str, content: Any, prefix: str, state: dict[str, Any] | None) -> Tab:
    if isinstance(content, LightningWork):
        url = work_url(content, state)
        if url:
            return Tab(name, "work", url)
        return Tab(name, "note", note=f"{content.name} has no URL yet (it has not started serving)")
    if isinstance(content, LightningFlow):
        frontend = frontend_of(content)
        if frontend is None:
            return Tab(name, "note", note=f"{content.name}.configure_layout() returns no frontend")
        return _frontend_tab(name, frontend, content, prefix)
    if isinstance(content, Frontend):
        owner = content.flow
        if owner is None:
            return Tab(name, "note", note="a frontend must be returned by its flow's configure_layout()")
        return _frontend_tab(name, content, owner, prefix)
    if isinstance(content, str):
        return Tab(name, "url", content)
    return Tab(name, "note", note=f"cannot show {type(content).__name__} {content!r}")


def _frontend_tab(name: str, frontend: Frontend, flow: LightningFlow, prefix: str) -> Tab:
    if isinstance(frontend, StaticWebFrontend):
        return Tab(name, "frontend", f"{prefix}/ui/{flow.name}/")
    if isinstance(frontend, SERVED_KINDS):
        from ._frontend_serve import served

        server = served(flow)
        if server is None:
            why = "servers start once per run, with its HTTP server, for the flows of its layout then"
            return Tab(name, "note", note=f"{type(frontend).__name__} of {flow.name} has no server: {why}")
        ended = server.ended()
        return Tab(name, "note", note=ended) if ended else Tab(name, "frontend", f"{prefix}/ui/{flow.name}/")
    return Tab(
        name,
        "note",
        note=f"{type(frontend).__name__} of {flow.name} is not served by lightning-kernel yet",
    )


def static_root(flow: LightningFlow, frontend: StaticWebFrontend) -> str:
    """The folder of ``frontend``, absolute."""
    folder = frontend.serve_dir
    if os.path.isabs(folder) or os.path.isdir(folder):
        return os.path.realpath(folder)
    try:
        beside = os.path.join(os.path.dirname(inspect.getfile(type(flow))), folder)
    except TypeError:
        beside = folder
    return os.path.realpath(beside)


def confined(root: str, path: str) -> str | None:
    """The file of ``root`` at ``path`` (``index.html`` for a folder), None when there is none or it
    would be outside ``root``."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    full = os.path.realpath(os.path.join(root, *parts))
    if full != root and not full.startswith(root + os.sep):
        return None
    if os.path.isdir(full):
        full = os.path.join(full, "index.html")
    return full if os.path.isfile(full) else None


def render(title: str, tabs: list[Tab], runs_link: bool = False) -> str:
    """The run's page: a bar of tabs, one framed at a time."""
    esc = html.escape
    waiting = any(t.kind == "note" and "no URL yet" in t.note for t in tabs)
    buttons, panes = [], []
    for i, t in enumerate(tabs):
        shown = "" if i == 0 else " hidden"
        buttons.append(f'<button data-tab="{i}"{" class=on" if i == 0 else ""}>{esc(t.name)}</button>')
        if t.kind == "note":
            body = f'<p class="note">{esc(t.note)}</p>'
        else:
            body = (
                f'<iframe src="{esc(t.url)}" title="{esc(t.name)}"></iframe>'
                f'<a class="open" href="{esc(t.url)}" target="_blank" rel="noopener">open {esc(t.url)}</a>'
            )
        panes.append(f'<section data-pane="{i}"{shown}>{body}</section>')
    if not tabs:
        panes.append(
            '<p class="note">This run has no layout: its flow defines no configure_layout(), and no Work serves a URL.</p>'
        )
    refresh = '<meta http-equiv="refresh" content="3">' if waiting else ""
    runs = '<a href="/view?runs=1">all runs</a>' if runs_link else ""
    return (
        f"<!doctype html><meta charset=utf-8>{refresh}<title>{esc(title)}</title>"
        "<style>body{margin:0;font-family:sans-serif}nav{display:flex;gap:4px;padding:6px;background:#eee}"
        "nav button{border:0;padding:6px 12px;background:#ddd;cursor:pointer}nav button.on{background:#fff}"
        "nav span{margin-left:auto;padding:6px}iframe{border:0;width:100%;height:calc(100vh - 70px)}"
        ".note{padding:12px}.open{display:block;padding:2px 8px;font-size:12px}</style>"
        f"<nav>{''.join(buttons)}<span>{esc(title)} {runs}</span></nav>{''.join(panes)}"
        "<script>for(const b of document.querySelectorAll('nav button'))b.onclick=()=>{"
        "for(const x of document.querySelectorAll('nav button'))x.classList.toggle('on',x===b);"
        "for(const p of document.querySelectorAll('section'))p.hidden=p.dataset.pane!==b.dataset.tab};</script>"
    )
