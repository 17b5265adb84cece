"""``PythonServer``: a Work that answers ``POST /predict`` with its ``predict()``, as Lightning App's.

Subclass it and write ``setup()`` (load the model, once per worker) and ``predict(request)``; give
``input_type``/``output_type`` (pydantic models, as in Lightning App: the request body is validated
into ``input_type``, the answer through ``output_type``). ``run()`` serves on the Work's ``host`` and
``port`` until the Work is stopped, and sets ``ready`` once the server accepts requests; the flow and
other Works reach it at ``work.url + "/predict"``.

Lightning App served it with FastAPI; here Starlette and uvicorn (the kernel's own server stack) do,
so only pydantic is needed, and only for typed requests: a ``PythonServer`` without types takes
``{"payload": ...}`` and answers ``{"prediction": ...}`` with plain JSON. ``Image``, ``Number``,
``Text`` and ``Category`` are the request and answer types Lightning App ships, built with pydantic on
first use (a clear error names ``pip install pydantic`` without it).
"""

from __future__ import annotations

import abc
import contextlib
import json
from typing import Any

from .._work import LightningWork
from ._extras import require


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and hasattr(cls, "model_validate") and hasattr(cls, "model_fields")


class PythonServer(LightningWork, abc.ABC):
    """A Work serving ``predict`` at ``POST /predict`` (JSON in, JSON out)."""

    def __init__(
        self, input_type: type | None = None, output_type: type | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("parallel", True)
        super().__init__(**kwargs)
        for what, cls in (("input_type", input_type), ("output_type", output_type)):
            if cls is not None and not _is_model(cls):
                raise TypeError(
                    f"{type(self).__name__}({what}=...) must be a pydantic BaseModel class, got {cls!r}"
                )
        self._input_type = input_type
        self._output_type = output_type
        self.ready = False

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Override: make the model (it runs once in the Work's process, before the server starts)."""

    @abc.abstractmethod
    def predict(self, request: Any) -> Any:
        """Override: the answer to one request (an ``input_type`` object, or the JSON body)."""

    def configure_input_type(self) -> type | None:
        return self._input_type

    def configure_output_type(self) -> type | None:
        return self._output_type

    def _answer(self, body: Any) -> Any:
        """What ``POST /predict`` answers for ``body``, as JSON values; raises ``ValueError`` for a bad body."""
        input_type, output_type = self.configure_input_type(), self.configure_output_type()
        if input_type is not None:
            try:
                request = input_type.model_validate(body)  # type: ignore[attr-defined]
            except Exception as exc:  # pydantic's ValidationError: the client's mistake
                raise ValueError(str(exc)) from None
        else:
            request = body
        answer = self.predict(request)
        if output_type is not None:
            validated = output_type.model_validate(answer)  # type: ignore[attr-defined]
            return validated.model_dump(mode="json")
        if hasattr(answer, "model_dump"):
            return answer.model_dump(mode="json")
        return answer

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def predict(request: Request) -> JSONResponse:
            try:
                body = json.loads(await request.body() or b"null")
            except ValueError:
                return JSONResponse({"detail": "the body must be JSON"}, status_code=400)
            try:
                return JSONResponse(self._answer(body))
            except ValueError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)

        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"ready": True})

        return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/healthz", health)])

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Set up, then serve until the Work is stopped (normally not overridden)."""
        import uvicorn

        self.setup(*args, **kwargs)
        server = uvicorn.Server(
            uvicorn.Config(self._app(), host=self.host, port=self.port or 0, log_level="error")
        )
        work = self

        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets)
            work.ready = True
            print(f"Your {type(work).__qualname__} has started: POST {work.url}/predict", flush=True)

        server.startup = startup  # type: ignore[method-assign]
        # The worker's own signal handlers stay: its stop interrupts run() whatever it is doing.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        server.run()


def _types() -> dict[str, type]:
    require("lightning_kernel.components.serve's request types", "pydantic")
    from pydantic import BaseModel

    class Image(BaseModel):
        """A base64-encoded image (PNG, JPEG)."""

        image: str | None = None

    class Number(BaseModel):
        prediction: float | None = None

    class Text(BaseModel):
        text: str | None = None

    class Category(BaseModel):
        category: int | None = None

    return {"Image": Image, "Number": Number, "Text": Text, "Category": Category}


_MADE: dict[str, type] = {}


def serve_type(name: str) -> type:
    """Lightning App's ``Image``/``Number``/``Text``/``Category``, made once."""
    if not _MADE:
        _MADE.update(_types())
    return _MADE[name]


TYPES = ("Category", "Image", "Number", "Text")
