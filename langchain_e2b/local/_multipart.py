"""A streaming ``multipart/form-data`` parser for envd's ``/files`` uploads.

It holds at most one delimiter's length of a part's data at a time, so an upload of any size
is written to disk as it arrives.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote


class MultipartError(ValueError):
    """The multipart body is malformed (the client is told so with a 400)."""


class MultipartParser:
    """Streaming ``multipart/form-data`` parser: yields part headers, data and part ends."""

    def __init__(self, boundary: bytes) -> None:
        self._delim = b"\r\n--" + boundary
        # The first boundary has no CRLF before it; pretend it has, so one delimiter fits all.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, chunk: bytes) -> list[tuple[str, Any]]:
        self._buf += chunk
        out: list[tuple[str, Any]] = []
        keep = len(self._delim) - 1
        while True:
            if self._state in ("preamble", "body"):
                idx = self._buf.find(self._delim)
                if idx < 0:
                    cut = max(0, len(self._buf) - keep)
                    if self._state == "body" and cut:
                        out.append(("data", bytes(self._buf[:cut])))
                    del self._buf[:cut]
                    return out
                if self._state == "body":
                    if idx:
                        out.append(("data", bytes(self._buf[:idx])))
                    out.append(("end", None))
                del self._buf[: idx + len(self._delim)]
                self._state = "boundary"
            elif self._state == "boundary":
                eol = self._buf.find(b"\r\n")
                if eol < 0:
                    if len(self._buf) > 1024:
                        raise MultipartError("malformed multipart boundary line")
                    return out
                line = bytes(self._buf[:eol]).strip(b" \t")
                del self._buf[: eol + 2]
                if line.startswith(b"--"):
                    self._state = "done"
                    return out
                if line:
                    raise MultipartError("malformed multipart boundary line")
                self._state = "headers"
            elif self._state == "headers":
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if self._buf.startswith(b"\r\n"):  # a part with no headers
                        del self._buf[:2]
                        out.append(("part", {}))
                        self._state = "body"
                        continue
                    if len(self._buf) > 64 * 1024:
                        raise MultipartError("multipart part headers are too large")
                    return out
                headers: dict[str, str] = {}
                for line_bytes in bytes(self._buf[:end]).split(b"\r\n"):
                    name, _, value = line_bytes.decode("utf-8", "replace").partition(":")
                    headers[name.strip().lower()] = value.strip()
                del self._buf[: end + 4]
                out.append(("part", headers))
                self._state = "body"
            else:
                return out


_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_FORM_ESCAPE = re.compile(r"%(22|0[0-9A-Fa-f]|1[0-9A-Fa-f])")


def disposition(value: str) -> dict[str, str]:
    """Parameters of a form-data Content-Disposition, decoded the way browsers/httpx encode them."""
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + value.partition(";")[2]):
        key = key.lower()
        if raw.startswith('"'):
            text = re.sub(r"\\(.)", r"\1", raw[1:-1])
            text = _FORM_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        else:
            text = raw.strip()
        if key.endswith("*"):
            charset, _, encoded = text.partition("''")
            text = unquote(encoded, encoding=charset or "utf-8", errors="replace")
            key = key[:-1]
        params[key] = text
    return params


def boundary(content_type: str) -> bytes | None:
    for key, raw in _PARAM.findall(";" + content_type.partition(";")[2]):
        if key.lower() == "boundary":
            value = raw.strip()
            if value.startswith('"'):
                value = value[1:-1]
            return value.encode("latin-1") if value else None
    return None
