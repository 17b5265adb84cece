"""One flow iteration: state in, events out. The live loop (``_loop.RunDriver``) and the replayer
(``_replay``) run this same code, so a replay re-computes exactly what the run computed.

An iteration hydrates the live Flow/Work objects from the state, calls ``root.run()`` (its
``work.run()``/``work.stop()`` calls come here, as the Works' dispatcher, and decide from the state
what to request), then diffs the flow's public attributes against the state. What it did is an
``Outcome``: the events to publish (state changes, run and stop requests, in the order the flow made
them) and the run's end when the flow stopped or failed. It publishes nothing and starts nothing:
the loop publishes the events stamped with the iteration's ``input_seq`` (the seq of the state it
ran on); the replayer compares them with the events the run recorded with that ``input_seq``.

Every decision reads the state, never the kernel's memory (which worker handles it has), so that an
iteration replayed on the recorded state decides the same: ``work.stop()`` asks a stop when the Work's
newest call is pending or running, or a worker of it runs (``state["works"][w]["worker"]``).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._app import LightningApp
from ._codec import check_size
from ._dispatch import USER_STOP, Blocked, decide
from ._events import Event, FlowStateChanged, RunEnded, WorkRunRequested, WorkStopRequested
from ._flow import AppFail, AppStop
from ._status import WorkStageStatus
from ._tee import LineTee
from ._work import LightningWork
from .errors import KernelError

DEFAULT_LIMIT = 1024 * 1024
"""NATS's default max_payload: the size limit of a replay, which has no server to ask."""


class FlowInterrupted(BaseException):
    """Raised inside ``root.run()`` by the kernel's signal handler (SIGTERM, Ctrl-C): the iteration is
    dropped, and the kernel interrupts the run."""


@dataclass
class Outcome:
    """What one iteration did: ``events`` to publish in order, and ``end`` when the run ends."""

    events: list[Event] = field(default_factory=list)
    end: RunEnded | None = None
    interrupted: bool = False
    """The iteration was interrupted (``FlowInterrupted``): nothing of it counts."""


Runner = Callable[[Callable[[], Any]], Any]
"""Calls ``root.run`` (the replayer's debugger wraps it: ``pdb.runcall``)."""


class FlowIteration:
    """Runs iterations of ``app``'s flow; it is the dispatcher of the app's Works."""

    def __init__(
        self,
        app: LightningApp,
        limit: Callable[[], int] = lambda: DEFAULT_LIMIT,
        on_line: Callable[[str], None] | None = None,
        echo: bool = True,
    ) -> None:
        self.app = app
        self._limit = limit
        self.on_line = on_line
        """Gets each line ``root.run()`` prints (the live loop records them as the flow's logs)."""
        self.echo = echo
        """Whether the lines also go to the terminal."""
        self.in_flow = False
        """True while ``root.run()`` runs (a signal handler may then interrupt it)."""
        self._outbox: list[Event] = []
        self._state: dict[str, Any] = {}
        for comp in app.components.values():
            if isinstance(comp, LightningWork):
                object.__setattr__(comp, "_lk_dispatcher", self)

    def run(self, state: dict[str, Any], runner: Runner | None = None) -> Outcome:
        """One iteration on ``state`` (a fold of the run's events)."""
        self._outbox = []
        self._state = state
        self.hydrate(state)
        root = self.app.root
        end: RunEnded | None = None
        real = sys.stdout
        out = LineTee(self.on_line or (lambda line: None), real if self.echo else None)
        sys.stdout = out
        call = runner or (lambda fn: fn())
        try:
            self.in_flow = True
            try:
                if isinstance(root, LightningWork):
                    # A Work as the root: run it once; the app succeeds when it does.
                    if root.has_succeeded:
                        raise AppStop("")
                    call(root.run)
                else:
                    call(root.run)
            finally:
                self.in_flow = False
        except FlowInterrupted:
            self._outbox = []  # half an iteration: nothing of it is published
            return Outcome(interrupted=True)
        except Blocked:
            pass
        except AppStop as stop:
            end = RunEnded(status="succeeded", message=stop.message)
        except AppFail as fail:
            end = RunEnded(status="failed", message=fail.message)
        except KernelError as exc:
            end = RunEnded(status="failed", message=str(exc))
        except Exception as exc:
            end = RunEnded(status="failed", message="".join(traceback.format_exception(exc)))
        finally:
            sys.stdout = real
            out.flush()
        events: list[Event] = []
        try:
            changes = self.diff(state)
        except KernelError as exc:
            changes = {}
            end = RunEnded(status="failed", message=str(exc))
        if changes:
            events.append(FlowStateChanged(changes=changes))
        events.extend(self._outbox)
        self._outbox = []
        return Outcome(events=events, end=end)

    def hydrate(self, state: dict[str, Any]) -> None:
        comps = state["components"]
        works = state["works"]
        for name, comp in self.app.components.items():
            known = comps.get(name)
            if known is None:
                raise KernelError(
                    f"the app has a component {name} that the run does not know (its components: "
                    f"{', '.join(sorted(comps))})"
                )
            comp._lk_set_vars(known["vars"])
            if isinstance(comp, LightningWork):
                w = works[name]
                object.__setattr__(comp, "_lk_status", w["status"])
                object.__setattr__(comp, "_lk_calls", w["calls"])
                object.__setattr__(comp, "_lk_last_index", w["last_index"])
                object.__setattr__(comp, "_lk_endpoint", w.get("endpoint") or {})

    def diff(self, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
        comps = state["components"]
        changes: dict[str, dict[str, Any]] = {}
        limit = self._limit()
        total = 0
        for name, comp in self.app.components.items():
            known = comps[name]["vars"]
            now = comp._lk_vars()
            diff = {k: v for k, v in now.items() if k not in known or known[k] != v}
            if diff:
                check_size(name, diff, limit, extra=total)
                total += len(str(diff))
                changes[name] = diff
        return changes

    # -- the dispatcher (LightningWork.run / stop on the flow side) -----------------------------------

    def call(self, work: LightningWork, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls: dict[str, Any] = work._lk_calls
        last_index: int = getattr(work, "_lk_last_index", 0)
        request, block = decide(work.name, work.cache_calls, work.parallel, calls, last_index, args, kwargs)
        if request is not None:
            limit = self._limit()
            vars_ = work._lk_vars()
            check_size(f"{work.name}.run()", {"args": request["args"], "kwargs": request["kwargs"]}, limit)
            check_size(work.name, vars_, limit)
            self._outbox.append(WorkRunRequested(work=work.name, vars=vars_, **request))
            # Seen at once by later calls in this same iteration; the event brings the same.
            pending = {
                "stage": WorkStageStatus.PENDING,
                "index": request["index"],
                "reason": "",
                "message": "",
            }
            object.__setattr__(work, "_lk_calls", {**calls, request["call"]: pending})
            object.__setattr__(work, "_lk_last_index", request["index"])
            object.__setattr__(work, "_lk_status", {"stage": WorkStageStatus.PENDING})
        if block:
            raise Blocked()

    def stop(self, work: LightningWork) -> None:
        worker = (self._state.get("works", {}).get(work.name) or {}).get("worker") or {}
        if (
            work.status.stage in (WorkStageStatus.PENDING, WorkStageStatus.RUNNING)
            or worker.get("state") == "running"
        ):
            self._outbox.append(WorkStopRequested(work=work.name, reason=USER_STOP))
