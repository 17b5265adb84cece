"""Lightning App's ``lightning.app.storage.payload`` module path: ``Payload`` lives in ``storage._payload``."""

from ._payload import Payload

__all__ = ["Payload"]
