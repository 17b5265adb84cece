"""JSON on the event hot paths (encoded by publishers, decoded and written by the recorder).

orjson is five to ten times faster than the standard library here, but differs at the edges: it
reads integers beyond 64 bits as floats, writes NaN as null, and refuses big integers and non-string
keys. Those (rare) cases go to ``json``, so what is read and written is what ``json`` would do.

An event payload that only ``json`` could write (a big integer, say) starts with a space, which JSON
allows: ``loads`` sees it and reads it with ``json`` too, at no cost to the others. Payloads made
elsewhere (not by ``dumps_strict``) are read by orjson, so integers beyond 64 bits in them would come
back as floats; every event this kernel publishes is made by ``dumps_strict``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_STRICT = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_BY_JSON = b" "


def loads(data: bytes) -> Any:
    if not data.startswith(_BY_JSON):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # let json say what is wrong, or read what only it reads
    return json.loads(data)


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def dumps_strict(value: Any) -> bytes:
    """Compact JSON bytes of ``value``; ``ValueError`` for NaN and infinities, ``TypeError`` for
    values JSON cannot hold (as ``json.dumps(allow_nan=False)``)."""
    try:
        data = orjson.dumps(value, option=_STRICT)
    except TypeError:
        data = b"null"  # big integers, int keys, subclasses, dataclasses: json decides
    if b"null" in data:  # maybe a NaN that orjson wrote as null
        return _BY_JSON + json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    return data
