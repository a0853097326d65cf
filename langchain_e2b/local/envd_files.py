"""envd's ``/files`` endpoint: downloads and uploads over plain HTTP, streamed both ways.

Downloads are read from disk and sent (gzipped when asked) chunk by chunk; uploads (a raw body
or ``multipart/form-data``, gzipped or not) are written to disk as they arrive.
"""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import re
import stat
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

from langchain_e2b.local._connect import ConnectError
from langchain_e2b.local._http import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    iter_body,
    query,
    send_chunk,
    send_error,
    send_json,
    start_stream,
)
from langchain_e2b.local._multipart import MultipartError, MultipartParser, boundary, disposition
from langchain_e2b.local.envd_fs import XATTR_PREFIX

FILE_CHUNK = 256 * 1024
# A file name that can go in a quoted Content-Disposition filename as it is (printable ASCII
# without the quote and the backslash).
_PLAIN_NAME = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Files:
    """The ``/files`` endpoint.

    Args:
        resolve: Turns a client's path into an absolute one (relative to home, ``~`` is home).
    """

    def __init__(self, resolve: Callable[[Any], str]) -> None:
        self.resolve = resolve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ``/files`` request."""
        try:
            if scope["method"] == "GET":
                await self._download(scope, send)
            elif scope["method"] == "POST":
                await self._upload(scope, receive, send)
            else:
                await send_error(send, 405, "use GET or POST on /files")
        except _BadRequest as exc:
            await send_error(send, exc.status, exc.message)

    async def _download(self, scope: Scope, send: Send) -> None:
        raw = query(scope).get("path")
        if not raw:
            raise _BadRequest(400, "the path query parameter is required")
        path = self._path(raw)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise _BadRequest(404, f"file '{path}' does not exist") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _BadRequest(403, f"permission denied: {path}") from None
            raise _BadRequest(400, f"cannot read {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise _BadRequest(400, f"path '{path}' is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise _BadRequest(400, f"path '{path}' is not a regular file")
            os.set_blocking(fd, True)
            name = os.path.basename(path)
            if _PLAIN_NAME.fullmatch(name):
                disposition = f'inline; filename="{name}"'
            else:
                # Control characters may not appear in a header at all: percent-encode.
                disposition = f"inline; filename*=UTF-8''{quote(name)}"
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            headers = [("content-disposition", disposition), ("vary", "Accept-Encoding")]
            if _wants_gzip(header(scope, "accept-encoding")):
                await start_stream(
                    send, 200, content_type, headers=[*headers, ("content-encoding", "gzip")]
                )
                compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
                while chunk := os.read(fd, FILE_CHUNK):
                    out = compressor.compress(chunk)
                    if out:
                        await send_chunk(send, out)
                await send_chunk(send, compressor.flush(), more=False)
                return
            headers.append(("content-length", str(st.st_size)))
            await start_stream(send, 200, content_type, headers=headers)
            while chunk := os.read(fd, FILE_CHUNK):
                await send_chunk(send, chunk)
            await send_chunk(send, b"", more=False)
        finally:
            os.close(fd)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query(scope)
        content_type = header(scope, "content-type") or ""
        encoding = (header(scope, "content-encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise _BadRequest(400, f"unsupported content encoding {encoding!r}")
        metadata = {
            k.decode("latin-1")[len("x-metadata-") :].lower(): v.decode("utf-8", "replace")
            for k, v in scope.get("headers", ())
            if k.decode("latin-1").lower().startswith("x-metadata-")
        }
        body = _decoded_body(receive, gzip=encoding == "gzip")
        kind = content_type.split(";")[0].strip().lower()
        written: list[dict[str, Any]] = []
        failure: _BadRequest | None = None
        try:
            if kind == "multipart/form-data":
                delimiter = boundary(content_type)
                if not delimiter:
                    raise _BadRequest(400, "multipart body without a boundary")
                await self._upload_multipart(body, delimiter, params.get("path"), written)
            else:
                target = params.get("path")
                if not target:
                    raise _BadRequest(400, "the path query parameter is required")
                await self._upload_one(body, target, written)
        except _BadRequest as exc:
            failure = exc
        # Read what is left of the body, so the client gets to see the answer.
        with contextlib.suppress(_BadRequest, ClientDisconnected):
            async for _ in body:
                pass
        if failure is not None:
            raise failure
        if not written:
            raise _BadRequest(400, "no file in the request")
        for item in written:
            self._replace_metadata(item["path"], metadata)
            if metadata:
                item["metadata"] = metadata
        await send_json(send, 200, written)

    def _path(self, raw: str) -> str:
        """The absolute path a request names; a 400 for a path ``/files`` cannot serve."""
        if "\r" in raw or "\n" in raw:
            raise _BadRequest(
                400,
                f"the path {raw!r} contains a line break (CR or LF), which file transfers do not "
                "support; use a name without line breaks (rename the file with a command, "
                "for example mv) and try again",
            )
        try:
            return self.resolve(raw)
        except ConnectError as exc:
            raise _BadRequest(400, exc.message) from None

    def _open_sink(self, raw: str) -> _FileSink:
        path = self._path(raw)
        try:
            return _FileSink(path)
        except IsADirectoryError:
            raise _BadRequest(400, f"path '{path}' is a directory") from None
        except OSError as exc:
            raise _upload_error(exc, path) from None

    @staticmethod
    def _write(sink: _FileSink, data: bytes) -> None:
        try:
            sink.write(data)
        except OSError as exc:
            raise _upload_error(exc, sink.path) from None

    @staticmethod
    def _written(sink: _FileSink) -> dict[str, Any]:
        return {"name": os.path.basename(sink.path), "type": "file", "path": sink.path}

    async def _upload_one(
        self, body: AsyncIterator[bytes], target: str, written: list[dict[str, Any]]
    ) -> None:
        sink = self._open_sink(target)
        try:
            async for chunk in body:
                self._write(sink, chunk)
        finally:
            sink.close()
        written.append(self._written(sink))

    async def _upload_multipart(
        self,
        body: AsyncIterator[bytes],
        delimiter: bytes,
        query_path: str | None,
        written: list[dict[str, Any]],
    ) -> None:
        parser = MultipartParser(delimiter)
        sink: _FileSink | None = None
        skipping = False
        try:
            async for chunk in body:
                try:
                    items = parser.feed(chunk)
                except MultipartError as exc:
                    raise _BadRequest(400, str(exc)) from None
                for kind, value in items:
                    if kind == "part":
                        params = disposition(value.get("content-disposition", ""))
                        if params.get("name") != "file":
                            skipping = True
                            continue
                        skipping = False
                        target = query_path if query_path and not written else None
                        target = target or params.get("filename")
                        if not target:
                            raise _BadRequest(400, "a file part has no filename (its path)")
                        sink = self._open_sink(target)
                    elif kind == "data" and not skipping and sink is not None:
                        self._write(sink, value)
                    elif kind == "end" and sink is not None:
                        sink.close()
                        written.append(self._written(sink))
                        sink = None
                if parser.done:
                    break
        finally:
            if sink is not None:
                sink.close()
        if not parser.done:
            raise _BadRequest(400, "the multipart body ended early")

    @staticmethod
    def _replace_metadata(path: str, metadata: Mapping[str, str]) -> None:
        """Make ``metadata`` the file's whole metadata: a write replaces it, as on E2B."""
        with contextlib.suppress(OSError):
            for name in os.listxattr(path, follow_symlinks=False):
                if name.startswith(XATTR_PREFIX) and name[len(XATTR_PREFIX) :] not in metadata:
                    with contextlib.suppress(OSError):
                        os.removexattr(path, name, follow_symlinks=False)
        for key, value in metadata.items():
            with contextlib.suppress(OSError):
                os.setxattr(path, XATTR_PREFIX + key, value.encode())


class _FileSink:
    """One file being written by an upload."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "path is a directory", path)
        # O_NONBLOCK so a FIFO at the path fails instead of hanging the agent.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NONBLOCK
        self.fd = os.open(path, flags, 0o644)
        os.set_blocking(self.fd, True)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _upload_error(exc: OSError, path: str) -> _BadRequest:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _BadRequest(507, f"not enough disk space to write {path}: {exc.strerror}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _BadRequest(403, f"permission denied: {path}")
    if exc.errno == errno.ENOENT:
        return _BadRequest(404, f"{path}: {exc.strerror}")
    return _BadRequest(400, f"cannot write {path}: {exc.strerror or exc}")


def _wants_gzip(accept: str | None) -> bool:
    for item in (accept or "").split(","):
        token, _, params = item.strip().partition(";")
        if token.strip().lower() != "gzip":
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


async def _decoded_body(receive: Receive, *, gzip: bool) -> AsyncIterator[bytes]:
    """The request body, gunzipped on the fly when asked; bounded memory per chunk."""
    decompressor = zlib.decompressobj(47) if gzip else None
    async for chunk in iter_body(receive):
        if decompressor is None:
            yield chunk
            continue
        try:
            data = decompressor.decompress(chunk, FILE_CHUNK)
            while True:
                if data:
                    yield data
                if not decompressor.unconsumed_tail:
                    break
                data = decompressor.decompress(decompressor.unconsumed_tail, FILE_CHUNK)
        except zlib.error as exc:
            raise _BadRequest(400, f"the gzip body is corrupt: {exc}") from None
    if decompressor is not None and not decompressor.eof:
        raise _BadRequest(400, "the gzip body is truncated")
