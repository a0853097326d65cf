"""envd's filesystem service: stat, list, make, move, remove and watch, as E2B's envd answers.

Everything here runs with the sandbox's own privileges, so paths are simply resolved against the
user's home and used: the jail, not this module, is the security boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import stat
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from langchain_e2b.local import _connect as rpc
from langchain_e2b.local._common import resolve_path, rfc3339
from langchain_e2b.local._connect import ConnectError, Stream, field
from langchain_e2b.local._inotify import Watch

# Events a polling watcher keeps between GetWatcherEvents calls; older ones are dropped.
MAX_WATCHER_EVENTS = 10_000
# Uploaded metadata lives in extended attributes under this prefix (as on E2B).
XATTR_PREFIX = "user.e2b."


def _permissions(mode: int) -> str:
    """The mode as Go's ``FileMode.String()`` writes it (what envd reports)."""
    kind = ""
    if stat.S_ISDIR(mode):
        kind += "d"
    if stat.S_ISLNK(mode):
        kind += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        kind += "D"
    if stat.S_ISFIFO(mode):
        kind += "p"
    if stat.S_ISSOCK(mode):
        kind += "S"
    if mode & stat.S_ISUID:
        kind += "u"
    if mode & stat.S_ISGID:
        kind += "g"
    if stat.S_ISCHR(mode):
        kind += "c"
    if mode & stat.S_ISVTX:
        kind += "t"
    bits = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (kind or "-") + bits


def _xattr_metadata(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    metadata: dict[str, str] = {}
    for name in names:
        if name.startswith(XATTR_PREFIX):
            with contextlib.suppress(OSError):
                value = os.getxattr(path, name, follow_symlinks=False)
                metadata[name[len(XATTR_PREFIX) :]] = value.decode("utf-8", "replace")
    return metadata


class _PollingWatcher:
    """A watcher for CreateWatcher/GetWatcherEvents: events wait here until fetched."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.watch: Watch | None = None

    def add(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)
        if len(self.events) > MAX_WATCHER_EVENTS:
            del self.events[: len(self.events) - MAX_WATCHER_EVENTS]


class Filesystem:
    """The ``filesystem.Filesystem`` RPCs.

    Args:
        home: The sandbox user's home directory; relative paths resolve here.
        user: The sandbox user's name (reported as the owner of the user's files).
    """

    def __init__(self, *, home: str, user: str) -> None:
        self.home = home
        self.user = user
        self._watchers: dict[str, _PollingWatcher] = {}

    def close(self) -> None:
        """Stop every polling watcher."""
        for watcher in list(self._watchers.values()):
            if watcher.watch is not None:
                watcher.watch.close()
        self._watchers.clear()

    def resolve(self, path: Any) -> str:
        """Resolve a path the way envd does: relative to home, ``~`` is home.

        Raises:
            ConnectError: ``invalid_argument`` for a path that is not a string or contains NUL.
        """
        try:
            return resolve_path(self.home, path)
        except ValueError as exc:
            raise ConnectError("invalid_argument", str(exc)) from None

    def entry_info(self, path: str) -> dict[str, Any]:
        """EntryInfo for ``path`` (not following a final symlink, but typed by its target)."""
        st = os.lstat(path)
        info: dict[str, Any] = {"name": os.path.basename(path) or path, "path": path}
        target_mode = st.st_mode
        if stat.S_ISLNK(st.st_mode):
            info["isSymlink"] = True
            info["symlinkTarget"] = os.path.realpath(path)
            try:
                target_mode = os.stat(path).st_mode
            except OSError:
                target_mode = 0
        if stat.S_ISDIR(target_mode):
            info["type"] = "FILE_TYPE_DIRECTORY"
        elif target_mode:
            info["type"] = "FILE_TYPE_FILE"
        if st.st_size:
            info["size"] = str(st.st_size)
        mode = stat.S_IMODE(st.st_mode) & 0o777
        if mode:
            info["mode"] = mode
        info["permissions"] = _permissions(st.st_mode)
        info["owner"] = self._owner(st.st_uid)
        info["group"] = self._group(st.st_gid)
        info["modifiedTime"] = rfc3339(st.st_mtime_ns)
        metadata = _xattr_metadata(path)
        if metadata:
            info["metadata"] = metadata
        return info

    def _owner(self, uid: int) -> str:
        return self._id_name(uid, os.getuid(), lambda n: pwd.getpwuid(n).pw_name)

    def _group(self, gid: int) -> str:
        return self._id_name(gid, os.getgid(), lambda n: grp.getgrgid(n).gr_name)

    def _id_name(self, number: int, own: int, lookup: Callable[[int], str]) -> str:
        """The name of a uid or gid: the sandbox user's own, its account's, or the number."""
        if number == own:
            return self.user
        try:
            return lookup(number)
        except KeyError:
            return str(number)

    def _stat_path(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        path = self.resolve(field(request, "path", ""))
        try:
            return path, self.entry_info(path)
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None

    def stat(self, request: dict[str, Any]) -> dict[str, Any]:
        """Stat: the entry at a path."""
        return {"entry": self._stat_path(request)[1]}

    def make_dir(self, request: dict[str, Any]) -> dict[str, Any]:
        """MakeDir: create a directory and its parents; ``already_exists`` if the path exists."""
        path = self.resolve(field(request, "path", ""))
        if os.path.lexists(path):
            kind = "directory" if os.path.isdir(path) else "file"
            raise ConnectError("already_exists", f"{path}: a {kind} already exists at this path")
        try:
            os.makedirs(path)
            return {"entry": self.entry_info(path)}
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None

    def move(self, request: dict[str, Any]) -> dict[str, Any]:
        """Move: rename an entry, creating the destination's parents."""
        source = self.resolve(field(request, "source", ""))
        destination = self.resolve(field(request, "destination", ""))
        if not os.path.lexists(source):
            raise ConnectError("not_found", f"{source}: no such file or directory")
        try:
            parent = os.path.dirname(destination)
            if parent:
                os.makedirs(parent, exist_ok=True)
            os.rename(source, destination)
            return {"entry": self.entry_info(destination)}
        except OSError as exc:
            raise rpc.from_os_error(exc, destination) from None

    def remove(self, request: dict[str, Any]) -> dict[str, Any]:
        """Remove: delete a file, a symlink or a directory tree; a missing path is no error."""
        path = self.resolve(field(request, "path", ""))
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass  # E2B's envd removes a missing path silently: the caller's goal already holds
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None
        return {}

    def list_dir(self, request: dict[str, Any]) -> dict[str, Any]:
        """ListDir: the entries below a directory, ``depth`` levels deep."""
        path = self.resolve(field(request, "path", ""))
        depth = field(request, "depth", 1)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ConnectError("invalid_argument", "depth must be a non-negative integer")
        try:
            if not os.path.isdir(path):
                os.stat(path)  # raises not_found for a missing path
                raise ConnectError("invalid_argument", f"{path} is not a directory")
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None
        entries = self._walk(path, max(depth, 1))
        return {"entries": entries}

    def _walk(self, root: str, depth: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []

        def visit(directory: str, level: int) -> None:
            try:
                with os.scandir(directory) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError:
                return
            for child in children:
                path = os.path.join(directory, child.name)
                try:
                    entries.append(self.entry_info(path))
                except OSError:
                    continue
                if level < depth and child.is_dir(follow_symlinks=False):
                    visit(path, level + 1)

        visit(root, 1)
        return entries

    def _watch_root(self, request: Mapping[str, Any]) -> str:
        path = self.resolve(field(request, "path", ""))
        try:
            if not stat.S_ISDIR(os.stat(path).st_mode):
                raise ConnectError("invalid_argument", f"{path} is not a directory")
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None
        return path

    async def watch_dir(self, request: dict[str, Any], stream: Stream) -> None:
        """WatchDir: stream filesystem events under a directory until the client leaves."""
        root = self._watch_root(request)
        queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
        watch = Watch(
            root,
            recursive=bool(field(request, "recursive", False)),
            include_entry=bool(field(request, "includeEntry", False)),
            sink=queue.put_nowait,
            entry_info=self.entry_info,
            on_close=lambda: queue.put_nowait(None),
        )
        try:
            await stream.send({"start": {}})
            while True:
                try:
                    events = await asyncio.wait_for(queue.get(), stream.keepalive)
                except asyncio.TimeoutError:
                    await stream.send({"keepalive": {}})
                    continue
                if events is None:
                    return
                for event in events:
                    await stream.send({"filesystem": event})
        finally:
            watch.close()

    async def create_watcher(self, request: dict[str, Any]) -> dict[str, Any]:
        """CreateWatcher: start collecting events for later GetWatcherEvents calls."""
        root = self._watch_root(request)
        watcher = _PollingWatcher()
        watcher.watch = Watch(
            root,
            recursive=bool(field(request, "recursive", False)),
            include_entry=bool(field(request, "includeEntry", False)),
            sink=watcher.add,
            entry_info=self.entry_info,
        )
        watcher_id = str(uuid.uuid4())
        self._watchers[watcher_id] = watcher
        return {"watcherId": watcher_id}

    def _watcher(self, request: Mapping[str, Any]) -> tuple[str, _PollingWatcher]:
        watcher_id = field(request, "watcherId")
        watcher = self._watchers.get(watcher_id) if isinstance(watcher_id, str) else None
        if watcher is None:
            raise ConnectError("not_found", f"watcher {watcher_id!r} not found")
        return watcher_id, watcher

    async def get_watcher_events(self, request: dict[str, Any]) -> dict[str, Any]:
        """GetWatcherEvents: the events collected since the last call."""
        _, watcher = self._watcher(request)
        events, watcher.events = watcher.events, []
        return {"events": events}

    async def remove_watcher(self, request: dict[str, Any]) -> dict[str, Any]:
        """RemoveWatcher: stop a watcher."""
        watcher_id, watcher = self._watcher(request)
        self._watchers.pop(watcher_id, None)
        if watcher.watch is not None:
            watcher.watch.close()
        return {}
