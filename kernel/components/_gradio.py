"""``ServeGradio``: a Work that serves a ``gradio`` Interface on the Work's ``host`` and ``port``.

Subclass it as in Lightning App: class attributes ``inputs`` and ``outputs`` (gradio components),
optionally ``examples``, ``title``, ``description``, ``enable_queue``; ``build_model()`` returns the
model (``self.model``), ``predict(...)`` answers a request. ``run()`` starts the server, and blocks
while it serves; the Work is reachable at ``self.url``. gradio is an optional dependency: making a
ServeGradio without it raises ``ModuleNotFoundError`` saying ``pip install gradio``.
"""

from __future__ import annotations

import abc
import functools
import inspect
from typing import Any

from .._work import LightningWork
from ._extras import require


class ServeGradio(LightningWork, abc.ABC):
    inputs: Any
    outputs: Any
    examples: list[Any] | None = None
    enable_queue: bool = False
    title: str | None = None
    description: str | None = None

    def __init__(self, *args: Any, theme: Any = None, **kwargs: Any) -> None:
        require(type(self).__name__, "gradio")
        super().__init__(*args, **kwargs)
        if not getattr(self, "inputs", None) or not getattr(self, "outputs", None):
            raise TypeError(f"{type(self).__name__} must set the class attributes `inputs` and `outputs`")
        self._model: Any = None
        self._theme = theme
        self.ready = False

    @property
    def model(self) -> Any:
        return self._model

    @abc.abstractmethod
    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Override: answer one request."""

    @abc.abstractmethod
    def build_model(self) -> Any:
        """Override: make the model; it is ``self.model`` afterwards."""

    def run(self, *args: Any, **kwargs: Any) -> None:
        import gradio

        if self._model is None:
            self._model = self.build_model()
        fn = functools.partial(self.predict, *args, **kwargs)
        fn.__name__ = self.predict.__name__  # type: ignore[attr-defined]  # gradio labels the fn by name
        options: dict[str, Any] = {"fn": fn, "inputs": self.inputs, "outputs": self.outputs}
        options.update(examples=self.examples, title=self.title, description=self.description)
        if self._theme is not None:
            options["theme"] = self._theme
        interface = gradio.Interface(**options)
        launch: dict[str, Any] = {"server_name": self.host, "server_port": self.port}
        if "enable_queue" in inspect.signature(interface.launch).parameters:  # gradio 3
            launch["enable_queue"] = self.enable_queue
        elif self.enable_queue:  # gradio 4 moved it to queue()
            interface = interface.queue()
        self.ready = True
        interface.launch(**launch)

    def configure_layout(self) -> str:
        return self.url


__all__ = ["ServeGradio"]
