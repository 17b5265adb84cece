"""Files and values that move between Works: ``Path`` (``lit://``), ``Drive``, ``Payload``.

They live in an artifact store (``ArtifactStore``: a local folder by default, or S3); the worker
runtime sets a ``StorageContext`` while a Work runs, so user code never names stores or runs.
"""

from ._artifacts import ArtifactStore
from ._context import StorageContext
from ._drive import Drive
from ._mount import Mount
from ._path import Path
from ._payload import Payload

__all__ = ["ArtifactStore", "Drive", "Mount", "Path", "Payload", "StorageContext"]
