"""The seccomp filter on every process of a jail: kernel calls a sandbox has no use for.

In the spirit of Docker's default profile, a short deny list in front of an allow-everything
default: kernel interfaces that let code reach past the namespaces (``AF_VSOCK`` sockets reach
the hypervisor and other guests, keyrings are per host user), change the machine (modules,
reboot, clocks, swap), or that are large kernel surfaces with a history of exploits and no use in
a sandbox (``bpf``, ``userfaultfd``, ``perf_event_open``, ``io_uring``). A denied call fails with
``EPERM``, so programs see an ordinary permission error. Calls of another ABI (32-bit ``int 0x80``
on x86-64, 32-bit ARM on arm64) would bypass a list of native numbers, so such a process is
killed; x32 calls fail with ``ENOSYS``.

The filter is a classic BPF program, built here for the running machine's architecture, and
bubblewrap installs it (``--seccomp FD``) just before it starts the agent, so the agent and every
process it starts (kernels, commands, whatever they start) run under it.
"""

from __future__ import annotations

import os
import platform
import struct
import sys

AF_VSOCK = 40

# What is denied, grouped by why; docs/security.md lists the same groups.
DENIED: dict[str, tuple[str, ...]] = {
    "kernel modules, kexec, reboot, swap, clocks, accounting and other machine-wide state": (
        "init_module",
        "finit_module",
        "delete_module",
        "create_module",
        "query_module",
        "get_kernel_syms",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "quotactl",
        "quotactl_fd",
        "syslog",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "sethostname",
        "setdomainname",
        "vhangup",
        "nfsservctl",
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "lookup_dcookie",
        "ioperm",
        "iopl",
        "modify_ldt",
    ),
    "mounts and namespaces": (
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "open_tree_attr",
        "mount_setattr",
        "unshare",
        "setns",
    ),
    "large kernel surfaces with a history of exploits": (
        "bpf",
        "userfaultfd",
        "perf_event_open",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ),
    "kernel keyrings (shared by every process of a host user)": (
        "keyctl",
        "add_key",
        "request_key",
    ),
    "reaching into other processes and files by handle": (
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "pidfd_getfd",
        "name_to_handle_at",
        "open_by_handle_at",
    ),
}
# Calls allowed only with some arguments: socket() but not for AF_VSOCK, personality() only for
# the values Docker allows (query, PER_LINUX, PER_LINUX32 and UNAME26 variants).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Syscall numbers: x86-64 from asm/unistd_64.h, arm64 from asm-generic/unistd.h. None: the
# call does not exist on that architecture.
_NUMBERS: dict[str, tuple[int | None, int | None]] = {
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "create_module": (174, None),
    "query_module": (178, None),
    "get_kernel_syms": (177, None),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    "syslog": (103, 116),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "clock_adjtime": (305, 266),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "vhangup": (153, 58),
    "nfsservctl": (180, 42),
    "uselib": (134, None),
    "ustat": (136, None),
    "sysfs": (139, None),
    "_sysctl": (156, None),
    "lookup_dcookie": (212, 18),
    "ioperm": (173, None),
    "iopl": (172, None),
    "modify_ldt": (154, None),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "move_mount": (429, 429),
    "open_tree": (428, 428),
    "open_tree_attr": (467, 467),
    "mount_setattr": (442, 442),
    "unshare": (272, 97),
    "setns": (308, 268),
    "bpf": (321, 280),
    "userfaultfd": (323, 282),
    "perf_event_open": (298, 241),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "pidfd_getfd": (438, 438),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    "socket": (41, 198),
    "personality": (135, 92),
}
_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
_X32_SYSCALL_BIT = 0x40000000

# Classic BPF, as <linux/filter.h> and <linux/seccomp.h> define it.
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGE_K = 0x35
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_EPERM = 1
_ENOSYS = 38
# Offsets in struct seccomp_data: nr, arch, then the arguments as 64-bit words; each argument
# checked here is a C int, whose value is the low half of its word.
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0 = 16 if sys.byteorder == "little" else 20

_Jump = int | str


def machine() -> str | None:
    """This machine's architecture if the filter supports it, else None."""
    name = platform.machine().lower()
    name = _MACHINE_ALIASES.get(name, name)
    return name if name in _ARCHES else None


def denied_calls(arch: str) -> list[str]:
    """The names of the calls denied outright on ``arch`` (the ones that exist there)."""
    column = _ARCHES[arch][0]
    return [
        name for names in DENIED.values() for name in names if _NUMBERS[name][column] is not None
    ]


def build(arch: str) -> bytes:
    """The filter for ``arch`` ("x86_64" or "aarch64") as a sock_filter array.

    Raises:
        ValueError: for an architecture the filter does not know.
    """
    if arch not in _ARCHES:
        raise ValueError(f"no seccomp filter for {arch}; known: {', '.join(_ARCHES)}")
    column, audit_arch = _ARCHES[arch]

    def nr(name: str) -> int:
        number = _NUMBERS[name][column]
        assert number is not None
        return number

    code: list[tuple[int, _Jump, _Jump, _Jump]] = []
    labels: dict[str, int] = {}

    def emit(op: int, k: _Jump, jt: _Jump = 0, jf: _Jump = 0) -> None:
        code.append((op, jt, jf, k))

    emit(_LD_W_ABS, _OFF_ARCH)
    emit(_JMP_JEQ_K, audit_arch, 0, "kill")
    emit(_LD_W_ABS, _OFF_NR)
    if arch == "x86_64":
        emit(_JMP_JGE_K, _X32_SYSCALL_BIT, "enosys", 0)
    emit(_JMP_JEQ_K, nr("socket"), "socket", 0)
    emit(_JMP_JEQ_K, nr("personality"), "personality", 0)
    for name in denied_calls(arch):
        emit(_JMP_JEQ_K, nr(name), "deny", 0)
    emit(_RET_K, _RET_ALLOW)
    # BPF jumps only go forward: each argument check ends in its own return.
    labels["socket"] = len(code)
    emit(_LD_W_ABS, _OFF_ARG0)
    emit(_JMP_JEQ_K, AF_VSOCK, "deny", 0)
    emit(_RET_K, _RET_ALLOW)
    labels["personality"] = len(code)
    emit(_LD_W_ABS, _OFF_ARG0)
    for value in PERSONALITIES:
        emit(_JMP_JEQ_K, value, "personality_ok", 0)
    emit(_JMP_JA, "deny")  # an unconditional jump's distance is its k
    labels["personality_ok"] = len(code)
    emit(_RET_K, _RET_ALLOW)
    labels["deny"] = len(code)
    emit(_RET_K, _RET_ERRNO | _EPERM)
    labels["enosys"] = len(code)
    emit(_RET_K, _RET_ERRNO | _ENOSYS)
    labels["kill"] = len(code)
    emit(_RET_K, _RET_KILL_PROCESS)

    def offset(index: int, target: _Jump, limit: int) -> int:
        if isinstance(target, int):
            return target
        distance = labels[target] - index - 1
        if not 0 <= distance <= limit:
            raise AssertionError(f"seccomp jump to {target} out of range: {distance}")
        return distance

    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        jt_, jf_, k_ = offset(index, jt, 0xFF), offset(index, jf, 0xFF), offset(index, k, 0xFFFF)
        out += struct.pack("=HBBI", op, jt_, jf_, k_)
    return bytes(out)


def program_fd(arch: str) -> int:
    """A descriptor to read the filter for ``arch`` from, as bubblewrap's ``--seccomp`` wants.

    A fresh pipe each time: bubblewrap reads the program to its end, so a descriptor cannot be
    shared between jails. The caller passes it to bubblewrap and closes it.
    """
    program = build(arch)
    read_end, write_end = os.pipe()
    try:
        # A few hundred bytes: far below the pipe's buffer, so this never blocks.
        os.write(write_end, program)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end
