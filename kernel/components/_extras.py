"""Optional libraries the serving components need, and the error that names the one to install."""

from __future__ import annotations

import importlib.util


def require(component: str, module: str, package: str | None = None) -> None:
    """``ModuleNotFoundError`` naming the ``pip install`` to run when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(
            f"{component} needs {module}, which is not installed here: pip install {package or module}",
            name=module,
        )
