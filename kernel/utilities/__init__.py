"""Lightning App's ``lightning.app.utilities`` module paths: ``app_helpers``, ``enum``,
``packaging.cloud_compute`` and ``tracer``, each re-exporting what lightning-kernel has of them."""

__all__: list[str] = []
