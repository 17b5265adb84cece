"""``Tracer``: run a Python script in this process with methods of chosen classes instrumented.

Lightning App's ``TracerPythonScript`` is built on it: ``add_traced(cls, "method", pre_fn, post_fn)``
wraps ``cls.method`` while ``trace(script, *args)`` runs the script as ``__main__`` (``runpy``), with
``sys.argv`` set to the script and its arguments. ``pre_fn(self, *args, **kwargs)`` returns
``(record, args, kwargs)`` and may change the arguments; ``post_fn(self, returned)`` returns
``(record, returned)`` and may change the value. What was recorded comes back in the script's globals
under ``"tracer_res"``: ``{class name: [{"id": id(instance), method: [call, ...]}, ...]}``, a call being
``{"pre", "post", "frame", "default_args", "call_args", "call": {"start", "end"}}`` (times in ns).

The classes are restored, and ``sys.argv``/``sys.path`` put back, however the script ends.
"""

from __future__ import annotations

import functools
import inspect
import os
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

PreFn = Callable[..., tuple[Any, tuple[Any, ...], dict[str, Any]]]
PostFn = Callable[[Any, Any], tuple[Any, Any]]


def get_default_args(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of ``fn`` that have defaults, with them."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return {}
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


class Tracer:
    def __init__(self) -> None:
        self.methods: list[tuple[type, str, int, PreFn | None, PostFn | None]] = []
        self.res: dict[str, Any] = {}
        self._saved: list[tuple[type, str, Any]] = []

    def add_traced(
        self,
        cls: type,
        method_name: str,
        stack_level: int = 1,
        pre_fn: PreFn | None = None,
        post_fn: PostFn | None = None,
    ) -> None:
        """Trace ``cls.method_name`` during the next ``trace``; ``stack_level`` picks the caller frame
        recorded (1: the code that called the method)."""
        if not hasattr(cls, method_name):
            raise AttributeError(f"Tracer.add_traced: {cls.__qualname__} has no method {method_name!r}")
        self.methods.append((cls, method_name, stack_level, pre_fn, post_fn))

    def _wrap(
        self, cls: type, name: str, stack_level: int, pre_fn: PreFn | None, post_fn: PostFn | None
    ) -> Any:
        raw = inspect.getattr_static(cls, name)
        kind = type(raw) if isinstance(raw, classmethod | staticmethod) else None
        fn = raw.__func__ if kind is not None else raw
        calls: dict[int, dict[str, Any]] = self.res.setdefault(cls.__qualname__, {})

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            owner = None if kind is staticmethod else args[0]
            rest = args if kind is staticmethod else args[1:]
            frame = sys._getframe(stack_level)
            entry: dict[str, Any] = {
                "frame": {
                    "filename": frame.f_code.co_filename,
                    "lineno": frame.f_lineno,
                    "function": frame.f_code.co_name,
                    "depth": len(inspect.stack(0)) - 1,
                }
            }
            if pre_fn is not None:
                entry["pre"], rest, kwargs = pre_fn(owner, *rest, **kwargs)
            entry["default_args"] = get_default_args(fn)
            entry["call_args"] = kwargs
            entry["call"] = {"start": time.time_ns()}
            ret = fn(*rest, **kwargs) if kind is staticmethod else fn(owner, *rest, **kwargs)
            entry["call"]["end"] = time.time_ns()
            if post_fn is not None:
                entry["post"], ret = post_fn(owner, ret)
            calls.setdefault(id(owner), {"id": id(owner)}).setdefault(name, []).append(entry)
            return ret

        return kind(traced) if kind is not None else traced

    def _instrument(self) -> None:
        self.res = {}
        for cls, name, stack_level, pre_fn, post_fn in self.methods:
            self._saved.append((cls, name, cls.__dict__.get(name, _ABSENT)))
            setattr(cls, name, self._wrap(cls, name, stack_level, pre_fn, post_fn))

    def _restore(self) -> None:
        for cls, name, original in reversed(self._saved):
            if original is _ABSENT:
                delattr(cls, name)  # it was inherited: the base's comes back
            else:
                setattr(cls, name, original)
        self._saved = []
        self.res = {cls: list(by_id.values()) for cls, by_id in self.res.items()}

    def trace(self, *args: Any, init_globals: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the script ``args[0]`` with arguments ``args[1:]`` as ``__main__``; its globals at the
        end, with what was traced under ``"tracer_res"``. ``SystemExit`` from the script propagates."""
        argv = [str(a) for a in args]
        script = argv[0]
        saved_argv, saved_path = sys.argv[:], sys.path[:]
        sys.path.append(os.path.dirname(os.path.abspath(script)))
        sys.argv = argv
        self._instrument()
        try:
            res = runpy.run_path(script, init_globals=init_globals, run_name="__main__")
        finally:
            self._restore()
            sys.argv, sys.path[:] = saved_argv, saved_path
        res["tracer_res"] = self.res
        return res


_ABSENT = object()
