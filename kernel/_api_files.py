"""A run's persisted files over HTTP: what a Path held (its manifest) and each file's bytes.

``GET /api/runs/{run}/manifests/{ref}`` answers the manifest ``ref`` (names, sizes, sha256) and
``GET /api/runs/{run}/manifests/{ref}/files/{name}`` one of its files, as an attachment (a file
Path's one file by its own name). Only a
manifest that a ``path.persisted`` record of that run names is served, and only the files it lists:
the artifact store also holds pickled apps and code, which are nobody's download. Bytes come back
checked against their sha256 (``ArtifactStore.get_bytes``). Reads, like the rest of the API's, need
the token beyond loopback.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import KernelError

PERSISTED = "path.persisted"


class FileNotInRun(KernelError):
    """A manifest or file that no Path of the run persisted (a 404)."""


def persisted_manifests(store: Any, run_id: str) -> set[str]:
    """The manifests the run's ``path.persisted`` records name."""
    out: set[str] = set()
    for rec in store.events(run_id, types=["work.record"]):
        body = rec.body
        if body.get("kind") == PERSISTED and isinstance(body.get("data"), dict):
            ref = body["data"].get("manifest")
            if isinstance(ref, str):
                out.add(ref)
    return out


def manifest_of(store: Any, artifacts: Any, run_id: str, ref: str) -> dict[str, Any]:
    if ref not in persisted_manifests(store, run_id):
        raise FileNotInRun(f"run {run_id} persisted no Path with manifest {ref}")
    manifest = json.loads(artifacts.get_bytes(ref))
    return {k: manifest.get(k) for k in ("path", "origin", "kind", "files")} | {"ref": ref}


def routes(server: Any, run_info: Callable[[str], Awaitable[Any]]) -> list[Any]:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    kernel = server.kernel

    def store() -> Any:
        assert kernel.store is not None
        return kernel.store

    def not_found(message: str) -> Response:
        return JSONResponse({"error": message}, status_code=404)

    async def manifest(request: Request) -> Response:
        info = await run_info(request.path_params["run"])
        try:
            got = await asyncio.to_thread(
                manifest_of, store(), kernel.artifacts, info.id, request.path_params["ref"]
            )
        except FileNotInRun as exc:
            return not_found(str(exc))
        return JSONResponse(got)

    async def file(request: Request) -> Response:
        info = await run_info(request.path_params["run"])
        ref, name = request.path_params["ref"], request.path_params["name"]
        try:
            got = await asyncio.to_thread(manifest_of, store(), kernel.artifacts, info.id, ref)
        except FileNotInRun as exc:
            return not_found(str(exc))
        files = got.get("files") or {}
        if (
            name not in files
            and got.get("kind") == "file"
            and name == posixpath.basename(str(got.get("path")))
        ):
            name = "."  # a file Path's one entry, by the file's name (URLs drop a "." segment)
        entry = files.get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            return not_found(f"the Path {got.get('path')} of run {info.id} holds no file {name!r}")
        data = await asyncio.to_thread(kernel.artifacts.get_bytes, entry["sha256"])
        shown = (
            posixpath.basename(str(got.get("path") or "file")) if name == "." else posixpath.basename(name)
        )
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in shown) or "file"
        headers = {
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Content-SHA256": entry["sha256"],
        }
        return Response(data, media_type="application/octet-stream", headers=headers)

    return [
        Route("/api/runs/{run}/manifests/{ref}", manifest),
        Route("/api/runs/{run}/manifests/{ref}/files/{name:path}", file),
    ]
