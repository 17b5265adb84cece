"""Lightning App's ``lightning.app.utilities.packaging`` module path: ``cloud_compute`` and ``build_config``."""

__all__: list[str] = []
