"""Every jailed process runs under the seccomp filter; denied kernel calls fail with EPERM.

The filter itself (``langchain_e2b.local.seccomp``) is also checked instruction by instruction
for both architectures it supports, with a small classic-BPF interpreter, since only one of them
can run here.
"""

from __future__ import annotations

import json
import struct

import pytest

from langchain_e2b.local import seccomp
from tests.security.conftest import Hostile, py, sh

ARCH = seccomp.machine()
# Raw calls, as hostile code would make them; each should fail with EPERM under the filter.
PROBE = r"""
import ctypes, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
calls = {calls}
result = {{}}
for name, (nr, args) in calls.items():
    ret = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    result[name] = "ok" if ret >= 0 else os.strerror(ctypes.get_errno())
try:
    socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK
    result["socket(AF_VSOCK)"] = "ok"
except OSError as exc:
    result["socket(AF_VSOCK)"] = exc.strerror
unfiltered = []
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        status = open(f"/proc/{{pid}}/status").read()
    except OSError:
        continue
    if "Seccomp:\t2" not in status:
        unfiltered.append(status.split("\n", 1)[0])
result["filtered"] = unfiltered == []
result["unfiltered"] = unfiltered
print(json.dumps(result))
"""
# Arguments that would do something real if the filter let the call through (and for which
# the kernel answers something other than EPERM without it, where it can).
CALL_ARGS = {
    "bpf": (0, 0, 0),
    "userfaultfd": (0,),
    "perf_event_open": (0, 0, -1, -1, 0),
    "keyctl": (0, -3, 0),  # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": (0, 0, 0, 0, 0),
    "request_key": (0, 0, 0, 0),
    "io_uring_setup": (1, 0),
    "unshare": (0,),
    "mount": (0, 0, 0, 0, 0),
    "init_module": (0, 0, 0),
    "reboot": (0, 0, 0, 0),
    "kexec_load": (0, 0, 0, 0),
    "pidfd_getfd": (-1, 0, 0),
}
X86_64_NR = {"read": 0, "write": 1, "openat": 257, "execve": 59, "clone": 56, "mmap": 9}
AARCH64_NR = {"read": 63, "write": 64, "openat": 56, "execve": 221, "clone": 220, "mmap": 222}
AUDIT = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def _probe_code() -> str:
    assert ARCH is not None
    column = 0 if ARCH == "x86_64" else 1
    calls = {name: (seccomp._NUMBERS[name][column], list(args)) for name, args in CALL_ARGS.items()}
    return PROBE.format(calls=repr(calls))


def _check(result: dict[str, object]) -> None:
    # Every process of the jail: bubblewrap's init, the agent, kernels, commands, this one.
    unfiltered = result.pop("unfiltered")
    assert result.pop("filtered") is True, f"processes without the seccomp filter: {unfiltered}"
    assert result == dict.fromkeys([*CALL_ARGS, "socket(AF_VSOCK)"], "Operation not permitted")


@pytest.mark.skipif(ARCH is None, reason="no seccomp filter for this architecture")
def test_denied_calls_fail_in_commands_and_kernels(hostile: Hostile) -> None:
    sandbox = hostile.sandbox()
    sandbox.files.write("/tmp/probe.py", _probe_code())
    code, out, err = sh(sandbox, "python3 /tmp/probe.py")
    assert code == 0, err
    _check(json.loads(out))
    _check(json.loads(py(sandbox, "exec(open('/tmp/probe.py').read())")))


@pytest.mark.skipif(ARCH is None, reason="no seccomp filter for this architecture")
def test_ordinary_code_still_works(hostile: Hostile) -> None:
    sandbox = hostile.sandbox()
    out = py(
        sandbox,
        "import socket, subprocess, threading, os, numpy, ctypes\n"
        "a, b = socket.socketpair(); a.sendall(b'hi'); assert b.recv(2) == b'hi'\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.bind(('::1', 0)); s.close()\n"
        "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.personality(0xFFFFFFFF) >= 0\n"
        "print(subprocess.run(['sh', '-c', 'echo $((6*7))'], capture_output=True, text=True)"
        ".stdout.strip(), int(numpy.arange(4).sum()), os.cpu_count() > 0)",
    )
    assert out.split() == ["42", "6", "True"]
    code, out, _ = sh(sandbox, "python3 -m pip --version && ps -e | wc -l && ls /proc/self/fd")
    assert code == 0
    assert "pip" in out


def _run_bpf(program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """Run a classic-BPF seccomp program on one call; return its action."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    code = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == 0x20:  # LD W ABS
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif op == 0x15:  # JEQ K
            pc += 1 + (jt if acc == k else jf)
        elif op == 0x35:  # JGE K
            pc += 1 + (jt if acc >= k else jf)
        elif op == 0x05:  # JA
            pc += 1 + k
        elif op == 0x06:  # RET K
            return k
        else:
            raise AssertionError(f"unexpected instruction {op:#x}")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_filter_program_for_each_architecture(arch: str) -> None:
    program = seccomp.build(arch)
    allow, eperm, enosys, kill = 0x7FFF0000, 0x00050001, 0x00050026, 0x80000000
    column = 0 if arch == "x86_64" else 1
    for name in seccomp.denied_calls(arch):
        number = seccomp._NUMBERS[name][column]
        assert number is not None
        assert _run_bpf(program, AUDIT[arch], number) == eperm, name
    ordinary = X86_64_NR if arch == "x86_64" else AARCH64_NR
    for name, number in ordinary.items():
        assert _run_bpf(program, AUDIT[arch], number) == allow, name
    socket_nr = seccomp._NUMBERS["socket"][column]
    assert socket_nr is not None
    assert _run_bpf(program, AUDIT[arch], socket_nr, 40) == eperm
    assert _run_bpf(program, AUDIT[arch], socket_nr, 2) == allow  # AF_INET
    assert _run_bpf(program, AUDIT[arch], socket_nr, (1 << 32) | 40) == eperm
    personality = seccomp._NUMBERS["personality"][column]
    assert personality is not None
    assert _run_bpf(program, AUDIT[arch], personality, 0xFFFFFFFF) == allow
    assert _run_bpf(program, AUDIT[arch], personality, 0x0040000) == eperm  # ADDR_NO_RANDOMIZE
    # Calls of another ABI would bypass the numbers: the process is killed.
    other = AUDIT["aarch64" if arch == "x86_64" else "x86_64"]
    assert _run_bpf(program, other, 0) == kill
    assert _run_bpf(program, 0x40000003, 0) == kill  # i386
    if arch == "x86_64":
        assert _run_bpf(program, AUDIT[arch], 0x40000000 | 321) == enosys  # x32 bpf
