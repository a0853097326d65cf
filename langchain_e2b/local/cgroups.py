"""Per-sandbox cgroups: one memory ceiling, CPU share and process limit for all of a sandbox.

Rlimits bound each process on its own and miss shared memory (``MAP_SHARED``, memfd, tmpfs); a
cgroup bounds a sandbox's processes together, counts every page they charge (shared memory and
the files in its tmpfs areas included), and going past it makes the kernel kill a process inside
that cgroup only. Layout: in each hierarchy, right below the runtime process's own cgroup (read
from ``/proc/self/cgroup``, never elsewhere), ``langchain-e2b.<runtime id>.<sandbox id>``. The
jail's first process joins its sandbox's cgroups before it execs bubblewrap, so every process of
the sandbox starts inside them; the jail's cgroup namespace hides the host's tree.

cgroup v1 (root on a v1 host): the ``memory``, ``cpu``, ``pids`` and ``freezer`` controllers,
each in its own hierarchy. cgroup v2: a writable subtree of the runtime's own cgroup. v2 lets a
cgroup either hold processes or hand controllers to its children, not both; when the runtime's
cgroup holds only the runtime itself, the runtime moves into a leaf of its own
(``langchain-e2b.proc.<pid>``) and enables the controllers for its siblings. Where neither works,
``RuntimeCgroups.fallbacks`` says which limit falls back to what.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("langchain_e2b.local")

PREFIX = "langchain-e2b."
_PROC_LEAF = PREFIX + "proc."
_LEGACY_PREFIX = "langchain-e2b-"
_V1_CONTROLLERS = ("memory", "cpu", "pids", "freezer")
_V2_CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000
_WAIT = 5.0


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy and the runtime's own cgroup in it.

    Attributes:
        version: 1 or 2.
        controllers: The controllers it offers that the runtime uses (v2: those it can enable).
        base: Directory of the runtime process's own cgroup in this hierarchy.
    """

    version: int
    controllers: frozenset[str]
    base: Path


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    # cgroup files take one value per write(); open without truncation or buffering.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _own_cgroups() -> tuple[dict[str, str], str | None]:
    """The runtime's cgroup path per v1 controller, and its v2 path (None without v2)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if hid == "0" and names == "":
            v2 = path
        else:
            for name in names.split(","):
                v1[name] = path
    return v1, v2


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """``(fstype, root, mountpoint, super options)`` of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, _, options = right.split(" ", 2)
        if fstype in ("cgroup", "cgroup2"):
            # Mount points are octal-escaped (\040 for a space).
            mountpoint = fields[4].encode().decode("unicode_escape")
            found.append((fstype, fields[3], mountpoint, set(options.split(","))))
    return found


def _join(mountpoint: str, root: str, path: str) -> Path:
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return Path(mountpoint + path.rstrip("/"))


def detect() -> list[Hierarchy]:
    """The cgroup hierarchies that hold the runtime's own cgroup and offer what it uses."""
    try:
        own_v1, own_v2 = _own_cgroups()
        mounts = _mounts()
    except OSError:
        return []
    found: list[Hierarchy] = []
    seen_mounts: set[str] = set()
    v1_names: set[str] = set()
    for fstype, root, mountpoint, options in mounts:
        wanted = frozenset(c for c in _V1_CONTROLLERS if c in options)
        if fstype != "cgroup" or not wanted or mountpoint in seen_mounts:
            continue
        seen_mounts.add(mountpoint)
        name = next(iter(sorted(wanted)))
        if name not in own_v1:
            continue
        base = _join(mountpoint, root, own_v1[name])
        if base.is_dir():
            found.append(Hierarchy(1, wanted, base))
            v1_names |= wanted
    if own_v2 is not None:
        for fstype, root, mountpoint, _ in mounts:
            if fstype != "cgroup2":
                continue
            base = _join(mountpoint, root, own_v2)
            try:
                offered = set(_read(base / "cgroup.controllers").split())
            except OSError:
                continue
            wanted = frozenset(c for c in _V2_CONTROLLERS if c in offered and c not in v1_names)
            # Freezing needs no controller on v2; use the hierarchy for it only if v1 lacks one.
            if wanted or "freezer" not in v1_names:
                found.append(Hierarchy(2, wanted, base))
            break
    return found


def _procs(directory: Path) -> list[int]:
    try:
        return [int(pid) for pid in _read(directory / "cgroup.procs").split()]
    except (OSError, ValueError):
        return []


def _kill_and_remove(directory: Path) -> bool:
    """Kill every process in a cgroup (and its children), then remove it; True if gone."""
    if not directory.is_dir():
        return True
    for child in [p for p in directory.iterdir() if p.is_dir()]:
        _kill_and_remove(child)
    if _procs(directory):
        # A frozen v1 task cannot act on SIGKILL; v2 delivers it, but thawing first is harmless.
        with contextlib.suppress(OSError):
            _write(directory / "freezer.state", "THAWED")
        with contextlib.suppress(OSError):
            _write(directory / "cgroup.freeze", "0")
        with contextlib.suppress(OSError):
            _write(directory / "cgroup.kill", "1")
    deadline = time.monotonic() + _WAIT
    while True:
        for pid in _procs(directory):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            directory.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            # EBUSY while dying processes are still counted in it.
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("could not remove cgroup %s: %s", directory, exc)
                return False
        time.sleep(0.005)


def _wait_for_line(path: Path, line: str) -> None:
    """Wait until a cgroup file shows ``line`` (freezing takes effect asynchronously)."""
    deadline = time.monotonic() + _WAIT
    while line not in _read(path).splitlines():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sandbox's processes did not reach '{line}' in {path}")
        time.sleep(0.001)


@dataclass
class SandboxCgroup:
    """The cgroups of one sandbox, one directory per hierarchy."""

    directories: list[tuple[Hierarchy, Path]]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files the jail's first process writes itself into."""
        return tuple(str(d / "cgroup.procs") for _, d in self.directories)

    def pids(self) -> list[int]:
        """Processes in the sandbox's cgroup."""
        return _procs(self.directories[0][1]) if self.directories else []

    def freeze(self) -> None:
        """Stop every process of the sandbox (for pausing it); returns once they are stopped.

        Raises:
            RuntimeError: if this sandbox has no freezer (v1 ``freezer`` or v2 cgroups).
        """
        self._set_frozen(True)

    def thaw(self) -> None:
        """Let a frozen sandbox's processes run again."""
        self._set_frozen(False)

    def frozen(self) -> bool:
        """Whether the sandbox is frozen."""
        for hierarchy, directory in self.directories:
            if hierarchy.version == 1 and "freezer" in hierarchy.controllers:
                return _read(directory / "freezer.state") == "FROZEN"
            if hierarchy.version == 2:
                return "frozen 1" in _read(directory / "cgroup.events").splitlines()
        return False

    def _set_frozen(self, frozen: bool) -> None:
        for hierarchy, directory in self.directories:
            if hierarchy.version == 1 and "freezer" in hierarchy.controllers:
                state = "FROZEN" if frozen else "THAWED"
                _write(directory / "freezer.state", state)
                _wait_for_line(directory / "freezer.state", state)
                return
            if hierarchy.version == 2:
                _write(directory / "cgroup.freeze", "1" if frozen else "0")
                _wait_for_line(directory / "cgroup.events", f"frozen {int(frozen)}")
                return
        raise RuntimeError("this sandbox has no cgroup freezer (cgroup v1 freezer or cgroup v2)")

    def remove(self) -> None:
        """Kill what is left in the sandbox's cgroups and remove them."""
        for _, directory in self.directories:
            _kill_and_remove(directory)
        self.directories = []


@dataclass
class RuntimeCgroups:
    """The hierarchies a runtime uses, and its sandboxes' cgroups in them.

    Sandbox cgroups sit directly in the runtime's own cgroup, named
    ``langchain-e2b.<runtime id>.<sandbox id>``: the CPU scheduler weighs sibling cgroups
    against each other and against the processes beside them, so a cgroup per runtime in
    between would squeeze all of its sandboxes into the share of one process.
    """

    runtime_id: str
    directories: list[tuple[Hierarchy, Path]] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        runtime_id: str,
        *,
        memory: bool = True,
        cpu: bool = True,
        hierarchies: Iterable[Hierarchy] | None = None,
    ) -> RuntimeCgroups:
        """Find the hierarchies this runtime can create cgroups in.

        Args:
            runtime_id: The runtime's id (its record in the reservations directory).
            memory: Whether a memory ceiling is wanted.
            cpu: Whether a CPU share is wanted.
            hierarchies: Hierarchies to use; detected from ``/proc/self/cgroup`` by default.
        """
        runtime = cls(runtime_id)
        for hierarchy in detect() if hierarchies is None else hierarchies:
            try:
                if hierarchy.version == 2 and hierarchy.controllers:
                    _delegate_v2(hierarchy)
                if not os.access(hierarchy.base, os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "not writable")
            except OSError as exc:
                log.debug("cgroup hierarchy %s is not usable: %s", hierarchy.base, exc)
                continue
            runtime.directories.append((hierarchy, hierarchy.base))
        have = runtime.controllers
        if memory and "memory" not in have:
            runtime.fallbacks.append(
                "memory: no writable memory cgroup, so each process gets RLIMIT_DATA instead of "
                "one ceiling for the sandbox (shared memory and tmpfs files are not counted)"
            )
        if cpu and "cpu" not in have:
            runtime.fallbacks.append("cpu: no writable cpu cgroup, so sandboxes share every core")
        if "pids" not in have:
            runtime.fallbacks.append(
                "processes: no pids cgroup, so RLIMIT_NPROC alone bounds them (per host uid)"
            )
        if "freezer" not in have:
            runtime.fallbacks.append("freezing: no cgroup freezer, so sandboxes cannot be paused")
        return runtime

    @property
    def controllers(self) -> set[str]:
        """Controllers the runtime's sandboxes get (``freezer`` stands for v2 freezing too)."""
        names: set[str] = set()
        for hierarchy, _ in self.directories:
            names |= hierarchy.controllers
            if hierarchy.version == 2:
                names.add("freezer")
        return names

    def create(
        self, sandbox_id: str, *, memory_bytes: int, cpus: float, processes: int
    ) -> SandboxCgroup:
        """Create a sandbox's cgroups with its limits (none if no hierarchy is usable).

        Args:
            sandbox_id: The sandbox's id, part of its cgroups' name.
            memory_bytes: Memory ceiling of all its processes together (0: none).
            cpus: CPU share in cores (0: none).
            processes: Maximum number of its processes and threads (0: none).
        """
        group = SandboxCgroup([])
        try:
            for hierarchy, parent in self.directories:
                directory = parent / f"{PREFIX}{self.runtime_id}.{sandbox_id}"
                directory.mkdir(mode=0o755)
                group.directories.append((hierarchy, directory))
                _apply_limits(hierarchy, directory, memory_bytes, cpus, processes)
        except BaseException:
            group.remove()
            raise
        return group

    def close(self) -> None:
        """Remove every cgroup of this runtime's sandboxes (killing what is left in them)."""
        mine = f"{PREFIX}{self.runtime_id}."
        for hierarchy, parent in self.directories:
            for directory in _dirs(parent):
                if directory.name.startswith(mine):
                    _kill_and_remove(directory)
            if hierarchy.version == 2 and hierarchy.controllers:
                _leave_proc_leaf(hierarchy)
        self.directories = []


def _apply_limits(
    hierarchy: Hierarchy, directory: Path, memory_bytes: int, cpus: float, processes: int
) -> None:
    quota = max(int(cpus * CPU_PERIOD_US), 1000)
    if hierarchy.version == 1:
        if "memory" in hierarchy.controllers and memory_bytes > 0:
            _write(directory / "memory.limit_in_bytes", str(memory_bytes))
            # With swap, memory.limit alone would let the sandbox spill into it.
            with contextlib.suppress(OSError):
                _write(directory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        if "cpu" in hierarchy.controllers and cpus > 0:
            _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(directory / "cpu.cfs_quota_us", str(quota))
            # Weighed like as many busy processes as it has cores, and never less than one:
            # a lighter weight delays every wakeup of the sandbox's processes on a busy host.
            _write(directory / "cpu.shares", str(int(1024 * max(cpus, 1.0))))
        if "pids" in hierarchy.controllers and processes > 0:
            _write(directory / "pids.max", str(processes))
        return
    if "memory" in hierarchy.controllers and memory_bytes > 0:
        _write(directory / "memory.max", str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(directory / "memory.swap.max", "0")
    if "cpu" in hierarchy.controllers and cpus > 0:
        _write(directory / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        _write(directory / "cpu.weight", str(min(int(100 * max(cpus, 1.0)), 10000)))
    if "pids" in hierarchy.controllers and processes > 0:
        _write(directory / "pids.max", str(processes))


def _enable(directory: Path, controllers: Iterable[str]) -> None:
    enabled = set(_read(directory / "cgroup.subtree_control").split())
    missing = [c for c in sorted(controllers) if c not in enabled]
    if missing:
        _write(directory / "cgroup.subtree_control", " ".join("+" + c for c in missing))


def _delegate_v2(hierarchy: Hierarchy) -> None:
    """Make the v2 controllers available below the runtime's own cgroup.

    A non-root v2 cgroup that holds processes cannot enable controllers for its children. If the
    runtime is the only process in it, the runtime moves into a leaf of its own; otherwise this
    raises and the runtime falls back to rlimits (other processes are not ours to move).
    """
    try:
        _enable(hierarchy.base, hierarchy.controllers)
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
    others = [pid for pid in _procs(hierarchy.base) if pid != os.getpid()]
    if others:
        raise OSError(
            errno.EBUSY,
            f"the runtime's cgroup {hierarchy.base} holds other processes; start the runtime "
            "in a cgroup of its own with delegation (for example `systemd-run --user --scope "
            "-p Delegate=yes langchain-e2b local serve`)",
        )
    leaf = hierarchy.base / f"{_PROC_LEAF}{os.getpid()}"
    leaf.mkdir(mode=0o755, exist_ok=True)
    _write(leaf / "cgroup.procs", str(os.getpid()))
    _enable(hierarchy.base, hierarchy.controllers)


def _leave_proc_leaf(hierarchy: Hierarchy) -> None:
    """Once no runtime of this process uses the v2 subtree, move the process back (if moved)."""
    leaf = hierarchy.base / f"{_PROC_LEAF}{os.getpid()}"
    others = [p for p in _dirs(hierarchy.base) if p.name.startswith(PREFIX) and p != leaf]
    if not leaf.is_dir() or others:
        return
    with contextlib.suppress(OSError):
        _write(
            hierarchy.base / "cgroup.subtree_control",
            " ".join("-" + c for c in sorted(hierarchy.controllers)),
        )
        _write(hierarchy.base / "cgroup.procs", str(os.getpid()))
        leaf.rmdir()


def _dirs(parent: Path) -> list[Path]:
    try:
        return [p for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return []


def remove_stale(
    dead: set[str], bases: Iterable[str] = (), known: set[str] | None = None
) -> tuple[int, set[str]]:
    """Remove the cgroups that dead runtimes left.

    Looked for below this runtime's own cgroups and in ``bases``, the cgroups the dead
    runtimes had for their own (a runtime started from another cgroup, such as another login
    session's memory cgroup, made its sandboxes' cgroups there). Only cgroups of the runtimes
    named in ``dead`` (their records say they are dead) and of this user are touched: a cgroup
    whose runtime keeps its record elsewhere (another user, another state directory) may be a
    live runtime's. Their processes are killed first. An empty v2 process leaf of this user
    goes too, and so does an empty cgroup of a runtime with no record at all (``known`` lists
    the runtimes that have one) once it is a minute old: a runtime that died while another
    removed its record left it.

    Returns:
        How many cgroups were removed, and the runtimes some of whose cgroups are still there.
    """
    removed = 0
    stuck: set[str] = set()
    parents = {h.base for h in detect()} | {Path(base) for base in bases}
    for parent in sorted(parents):
        for directory in _dirs(parent):
            name = directory.name
            try:
                if directory.stat().st_uid != os.geteuid():
                    continue
            except OSError:
                continue
            if name.startswith(_PROC_LEAF):
                if not _procs(directory):
                    with contextlib.suppress(OSError):
                        directory.rmdir()
                        removed += 1
                continue
            if name.startswith(PREFIX):
                runtime_id = name[len(PREFIX) :].split(".", 1)[0]
            elif name.startswith(_LEGACY_PREFIX):
                # A whole runtime's subtree, as the first version of this module laid it out.
                runtime_id = name[len(_LEGACY_PREFIX) :]
            else:
                continue
            if runtime_id not in dead:
                if known is not None and runtime_id not in known and _orphan(directory):
                    with contextlib.suppress(OSError):
                        directory.rmdir()
                        removed += 1
                continue
            if _kill_and_remove(directory):
                removed += 1
            else:
                stuck.add(runtime_id)
    return removed, stuck


def _orphan(directory: Path) -> bool:
    """Empty and a minute old: past the moment between a cgroup's creation and its jail."""
    try:
        age = time.time() - directory.stat().st_mtime
    except OSError:
        return False
    return age > 60 and not _procs(directory) and not _dirs(directory)
