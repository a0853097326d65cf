"""What a runtime holds on the host across processes: its record and its sandboxes' host uids.

Every runtime keeps a record in the state directory (``/run/langchain-e2b`` as root, else a
private per-user directory) and holds an ``flock`` on it for as long as it lives; the kernel
drops the lock when the process ends, however it ends. So a record whose lock can be taken
belongs to a dead runtime, and a starting runtime removes what that one left behind (its run
directory, its sandboxes' directories, its cgroups) and never touches a live one's.

Host uids for jails (root only) are reserved the same way: one lock file per uid, held while
the sandbox lives, so two runtimes on one host never hand out the same uid. Uids of accounts
(``getpwuid``/``getgrgid``), of ``/etc/subuid``/``/etc/subgid`` ranges and of any running
process are skipped. A dead runtime's reservations are free again once its lock is gone and no
process runs as the uid.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import logging
import os
import pwd
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_e2b.local import cgroups

log = logging.getLogger("langchain_e2b.local")

ROOT_STATE_DIR = Path("/run/langchain-e2b")
UID_BASE = 1_500_000
UID_COUNT = 1_000_000
_RECORD_SUFFIX = ".json"
_SCAN_TTL = 2.0


def state_dir() -> Path:
    """The directory of runtime records and uid locks, created private to this user.

    Raises:
        PermissionError: if it exists but belongs to someone else or others may write it.
    """
    if os.geteuid() == 0:
        path = ROOT_STATE_DIR
    else:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
        parent = Path(runtime_dir) if runtime_dir else Path(tempfile.gettempdir())
        path = parent / f"langchain-e2b-{os.geteuid()}"
    _private_dir(path)
    return path


def _private_dir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=False)
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise PermissionError(
            f"{path} must be a directory owned by uid {os.geteuid()} that others cannot write; "
            "remove it and start the runtime again"
        )


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_locked(path: Path) -> int | None:
    """Open and lock ``path`` (creating it); None if someone holds it.

    A file can be unlinked by its releaser between our open and our lock; the lock is then on a
    file nobody else will see, so it counts only if ``path`` is still the file we locked.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    if _try_lock(fd):
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
    os.close(fd)
    return None


class RuntimeRecord:
    """A live runtime's record: its id, pid and the host paths it owns (locked while alive)."""

    def __init__(self, directory: Path, run_dir: Path, data_dir: Path) -> None:
        """Write and lock the record; the lock is held until :meth:`close` or process end."""
        records = directory / "runtimes"
        _private_dir(records)
        self.runtime_id = secrets.token_hex(8)
        self.path = records / (self.runtime_id + _RECORD_SUFFIX)
        # Written under a temporary name and renamed once locked, so a starting runtime never
        # sees the record of a live runtime unlocked.
        temp = records / f".{self.runtime_id}.tmp"
        fd = _open_locked(temp)
        if fd is None:  # pragma: no cover - the name is fresh
            raise RuntimeError(f"could not lock {temp}")
        body = {
            "pid": os.getpid(),
            "run_dir": str(run_dir),
            "data_dir": str(data_dir),
            # Where its sandboxes' cgroups will be, for whoever cleans up after it.
            "cgroup_bases": [str(h.base) for h in cgroups.detect()],
        }
        os.write(fd, json.dumps(body).encode())
        os.rename(temp, self.path)
        self._fd: int | None = fd

    def close(self) -> None:
        """Remove the record (the runtime has cleaned up after itself)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _records(directory: Path) -> list[Path]:
    try:
        return sorted((directory / "runtimes").iterdir())
    except FileNotFoundError:
        return []


def clean_leftovers(directory: Path | None = None) -> dict[str, int]:
    """Remove what dead runtimes left: their directories, cgroups and records.

    Returns:
        Counts of what was removed: ``runtimes``, ``paths``, ``cgroups`` and ``uids``.
    """
    directory = directory or state_dir()
    counts = {"runtimes": 0, "paths": 0, "cgroups": 0, "uids": 0}
    live_data_dirs: set[str] = set()
    dead: list[tuple[Path, int, dict[str, Any]]] = []
    for path in _records(directory):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        if not _try_lock(fd):
            if path.name.endswith(_RECORD_SUFFIX):
                with contextlib.suppress(OSError, ValueError):
                    live_data_dirs.add(json.loads(path.read_text())["data_dir"])
            os.close(fd)
            continue
        try:
            body = json.loads(os.pread(fd, 65536, 0) or b"{}")
        except ValueError:
            body = {}
        dead.append((path, fd, body if isinstance(body, dict) else {}))
    dead_ids = {path.name.removesuffix(_RECORD_SUFFIX) for path, _, _ in dead}
    bases = [b for _, _, body in dead for b in body.get("cgroup_bases", ()) if isinstance(b, str)]
    known = {path.name.removesuffix(_RECORD_SUFFIX) for path in _records(directory)}
    counts["cgroups"], stuck = cgroups.remove_stale(dead_ids, bases, known)
    for path, fd, body in dead:
        try:
            counts["paths"] += _remove_paths(body, live_data_dirs)
            # A record stays while some of its runtime's cgroups do: the next start retries.
            if path.name.removesuffix(_RECORD_SUFFIX) not in stuck:
                with contextlib.suppress(OSError):
                    path.unlink()
                counts["runtimes"] += 1
        finally:
            os.close(fd)
    counts["uids"] = _free_dead_uids(directory)
    if any(counts.values()):
        log.info(
            "removed what %(runtimes)d dead runtime(s) left: %(paths)d directories, "
            "%(cgroups)d cgroups, %(uids)d uid reservations",
            counts,
        )
    return counts


def _remove_paths(body: dict[str, Any], live_data_dirs: set[str]) -> int:
    removed = 0
    run_dir = body.get("run_dir")
    if run_dir and Path(run_dir).is_dir():
        shutil.rmtree(run_dir, ignore_errors=True)
        removed += 1
    data_dir = body.get("data_dir")
    # A data directory given by the user may be shared with a live runtime: its sandboxes
    # cannot be told apart, so it is left alone until no live runtime uses it.
    if not data_dir or data_dir in live_data_dirs:
        return removed
    sandboxes = Path(data_dir) / "sandboxes"
    if sandboxes.is_dir():
        for entry in sandboxes.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    data = Path(data_dir)
    # A temporary data directory the runtime made itself goes entirely.
    if data.parent == Path(tempfile.gettempdir()) and data.name.startswith("langchain-e2b-"):
        with contextlib.suppress(OSError):
            sandboxes.rmdir()
            data.rmdir()
    return removed


def _sub_ranges() -> list[tuple[int, int]]:
    ranges = []
    for name in ("/etc/subuid", "/etc/subgid"):
        with contextlib.suppress(OSError):
            for line in Path(name).read_text().splitlines():
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    ranges.append((int(parts[1]), int(parts[1]) + int(parts[2])))
    return ranges


def _taken_by_account(uid: int, ranges: list[tuple[int, int]]) -> bool:
    if any(start <= uid < end for start, end in ranges):
        return True
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
        except KeyError:
            continue
        return True
    return False


def _uids_in_use() -> set[int]:
    """The uids in our range that live processes run as.

    Zombies do not count: they can do nothing, and init reaps a dead runtime's a little later.
    """
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                uid = os.stat(entry.path).st_uid
                if uid < UID_BASE or uid in found:
                    continue
                with open(f"{entry.path}/stat", "rb") as stat:
                    if stat.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                        found.add(uid)
    return found


def _free_dead_uids(directory: Path) -> int:
    """Remove the uid lock files of dead runtimes whose uid no process uses any more."""
    try:
        entries = [p for p in (directory / "uids").iterdir() if p.name.isdigit()]
    except FileNotFoundError:
        return 0
    freed = 0
    in_use: set[int] | None = None
    for path in entries:
        fd = _open_locked(path)
        if fd is None:
            continue
        try:
            in_use = _uids_in_use() if in_use is None else in_use
            if int(path.name) not in in_use:
                path.unlink()
                freed += 1
        finally:
            os.close(fd)
    return freed


class UidPool:
    """Host uids reserved for this runtime's sandboxes, one per sandbox."""

    def __init__(self, directory: Path) -> None:
        """Use ``directory/uids`` for the lock files."""
        self.directory = directory / "uids"
        _private_dir(self.directory)
        self._held: dict[str, tuple[int, int]] = {}
        self._ranges = _sub_ranges()
        self._accounts: dict[int, bool] = {}
        self._in_use: set[int] = set()
        self._scanned_at = -_SCAN_TTL

    def reserve(self, owner: str) -> int:
        """Reserve a free host uid for ``owner`` (a sandbox id) and return it.

        Raises:
            RuntimeError: if every uid in the range is taken.
        """
        mine = {uid for uid, _ in self._held.values()}
        # Processes that already run as a uid (a tool that picked it, a runtime of an older
        # version, a dead runtime's leftover) could reach the sandbox's files and count
        # against its process limit: such uids are skipped. Scanning /proc takes a few
        # milliseconds on a busy host, so a burst of reservations (the warm pool) shares one.
        now = time.monotonic()
        if now - self._scanned_at > _SCAN_TTL:
            self._in_use, self._scanned_at = _uids_in_use(), now
        in_use = self._in_use
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            if uid in mine or uid in in_use:
                continue
            if uid not in self._accounts:
                self._accounts[uid] = _taken_by_account(uid, self._ranges)
            if self._accounts[uid]:
                continue
            path = self.directory / str(uid)
            fd = _open_locked(path)
            if fd is None:
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {owner}\n".encode(), 0)
            self._held[owner] = (uid, fd)
            return uid
        raise RuntimeError(
            f"no free host uid between {UID_BASE} and {UID_BASE + UID_COUNT}: too many sandboxes"
        )

    def release(self, owner: str) -> None:
        """Give ``owner``'s uid back (its processes are gone)."""
        held = self._held.pop(owner, None)
        if held is None:
            return
        uid, fd = held
        with contextlib.suppress(OSError):
            (self.directory / str(uid)).unlink()
        os.close(fd)

    def close(self) -> None:
        """Release every uid still held."""
        for owner in list(self._held):
            self.release(owner)


class HostResources:
    """Everything one runtime holds on the host for its sandboxes: record, cgroups, uids.

    Creating it registers the runtime, removes what dead runtimes left and prepares the
    runtime's cgroups; :meth:`close` undoes all of it.
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        data_dir: Path,
        memory_bytes: int,
        cpus: float,
        processes: int,
        isolation: bool = True,
    ) -> None:
        """Register the runtime and prepare its cgroups (jailed sandboxes only)."""
        self.directory = state_dir()
        self.record = RuntimeRecord(self.directory, run_dir, data_dir)
        self._limits = (memory_bytes, cpus, processes)
        self.leftovers = clean_leftovers(self.directory)
        self.cgroups: cgroups.RuntimeCgroups | None = None
        self.uids: UidPool | None = None
        self._groups: dict[str, cgroups.SandboxCgroup] = {}
        if not isolation:
            return
        if os.geteuid() == 0:
            self.uids = UidPool(self.directory)
        self.cgroups = cgroups.RuntimeCgroups.open(
            self.record.runtime_id, memory=memory_bytes > 0, cpu=cpus > 0
        )
        if self.cgroups.fallbacks:
            log.warning("sandbox limits without cgroups: %s", "; ".join(self.cgroups.fallbacks))

    def acquire(self, sandbox_id: str) -> tuple[int | None, tuple[str, ...]]:
        """Reserve a sandbox's host uid and create its cgroups.

        Returns:
            The host uid (None: the runtime's own) and the ``cgroup.procs`` files its jail
            joins before exec.
        """
        uid = self.uids.reserve(sandbox_id) if self.uids is not None else None
        if self.cgroups is None:
            return uid, ()
        memory_bytes, cpus, processes = self._limits
        try:
            group = self.cgroups.create(
                sandbox_id, memory_bytes=memory_bytes, cpus=cpus, processes=processes
            )
        except BaseException:
            self.release(sandbox_id)
            raise
        self._groups[sandbox_id] = group
        return uid, group.procs_files

    def cgroup(self, sandbox_id: str) -> cgroups.SandboxCgroup | None:
        """The sandbox's cgroups (to freeze or thaw it), if it has any."""
        return self._groups.get(sandbox_id)

    def release(self, sandbox_id: str) -> None:
        """Remove a sandbox's cgroups and give its uid back; call once its jail is reaped."""
        group = self._groups.pop(sandbox_id, None)
        if group is not None:
            group.remove()
        if self.uids is not None:
            self.uids.release(sandbox_id)

    def close(self) -> None:
        """Release every sandbox's resources and the runtime's own (after its sandboxes end)."""
        for sandbox_id in list(self._groups):
            self.release(sandbox_id)
        if self.cgroups is not None:
            self.cgroups.close()
        if self.uids is not None:
            self.uids.close()
        self.record.close()
