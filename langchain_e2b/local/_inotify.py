"""Filesystem events from Linux inotify (through ctypes), for envd's WatchDir and watchers.

inotify watches one directory, not a tree: a recursive watch adds a watch for every directory
below the root, and for each directory created (or moved in) after the watch started, so that
changes deep inside new directories are reported too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Callable
from typing import Any

from langchain_e2b.local import _connect as rpc
from langchain_e2b.local._connect import ConnectError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_WATCH_MASK = (
    _IN_CREATE | _IN_MODIFY | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_ATTRIB
) | _IN_DELETE_SELF
_INOTIFY_EVENT = struct.Struct("iIII")


class Watch:
    """Filesystem events under one directory, from inotify, delivered to ``sink``."""

    def __init__(
        self,
        root: str,
        *,
        recursive: bool,
        include_entry: bool,
        sink: Callable[[list[dict[str, Any]]], None],
        entry_info: Callable[[str], dict[str, Any]],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.include_entry = include_entry
        self._sink = sink
        self._entry_info = entry_info
        self._on_close = on_close
        self._wds: dict[int, str] = {}
        self.closed = False
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise rpc.from_os_error(OSError(err, os.strerror(err)), "cannot watch")
        self._fd = fd
        try:
            self._add(root, "", root_dir=True)
            if recursive:
                self._add_tree(root, "")
        except BaseException:
            os.close(fd)
            raise
        asyncio.get_running_loop().add_reader(fd, self._ready)

    def _add(self, path: str, rel: str, *, root_dir: bool = False) -> None:
        mask = _WATCH_MASK | (_IN_ONLYDIR if root_dir else 0)
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if root_dir:
                raise rpc.from_os_error(OSError(err, os.strerror(err)), path)
            return
        self._wds[wd] = rel

    def _add_tree(self, path: str, rel: str, found: list[str] | None = None) -> None:
        """Watch every directory below ``path``; list what is there in ``found`` if given.

        Each directory's watch is added before it is read, so an entry made at any moment is
        either seen by the scan or reported by inotify (now and then by both).
        """
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            child = os.path.join(rel, entry.name)
            if found is not None:
                found.append(child)
            if entry.is_dir(follow_symlinks=False):
                self._add(entry.path, child)
                self._add_tree(entry.path, child, found)

    def _ready(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        events: list[dict[str, Any]] = []
        offset = 0
        root_gone = False
        while offset + _INOTIFY_EVENT.size <= len(data):
            wd, mask, _cookie, size = _INOTIFY_EVENT.unpack_from(data, offset)
            raw = data[offset + _INOTIFY_EVENT.size : offset + _INOTIFY_EVENT.size + size]
            offset += _INOTIFY_EVENT.size + size
            name = os.fsdecode(raw.rstrip(b"\0"))
            base = self._wds.get(wd)
            if mask & _IN_IGNORED:
                self._wds.pop(wd, None)
                root_gone = root_gone or base == ""
                continue
            if base is None or mask & _IN_Q_OVERFLOW:
                continue
            if mask & _IN_DELETE_SELF:
                if base == "":
                    root_gone = True
                continue
            rel = os.path.join(base, name) if name else base
            full = os.path.join(self.root, rel)
            # What a new directory already held when its watch was added: a process that
            # makes a directory and writes into it at once is faster than this loop.
            found: list[str] = []
            if mask & (_IN_CREATE | _IN_MOVED_TO):
                kind = "EVENT_TYPE_CREATE"
                if self.recursive and mask & _IN_ISDIR:
                    self._add(full, rel)
                    self._add_tree(full, rel, found)
            elif mask & _IN_MODIFY:
                kind = "EVENT_TYPE_WRITE"
            elif mask & _IN_DELETE:
                kind = "EVENT_TYPE_REMOVE"
            elif mask & _IN_MOVED_FROM:
                kind = "EVENT_TYPE_RENAME"
            elif mask & _IN_ATTRIB:
                kind = "EVENT_TYPE_CHMOD"
            else:
                continue
            # A burst of writes to one file is one event to the reader.
            if events and events[-1]["name"] == rel and events[-1]["type"] == kind:
                continue
            events.append(self._event(rel, kind))
            events.extend(self._event(child, "EVENT_TYPE_CREATE") for child in found)
        if events:
            self._sink(events)
        if root_gone:
            self.close()

    def _event(self, rel: str, kind: str) -> dict[str, Any]:
        event: dict[str, Any] = {"name": rel, "type": kind}
        if self.include_entry and kind not in ("EVENT_TYPE_REMOVE", "EVENT_TYPE_RENAME"):
            with contextlib.suppress(OSError, ConnectError):
                event["entry"] = self._entry_info(os.path.join(self.root, rel))
        return event

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._on_close is not None:
            self._on_close()
