"""Lightning App's ``lightning.app.utilities.packaging`` module path: ``cloud_compute``."""

__all__: list[str] = []
