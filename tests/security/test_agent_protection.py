"""The sandbox's own agent is out of reach of the code it runs, though both share a uid.

Whoever holds the agent's listening socket answers every later API call of the sandbox and sees
all its traffic (uploads, environment variables given to commands). Code in the sandbox tries to
take it with ``pidfd_getfd`` and to attach to the agent with ``ptrace``.
"""

from __future__ import annotations

import json

from tests.security.conftest import Hostile, sh

ATTACK = r"""
import ctypes, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_OPEN = {pidfd_open}
SYS_PIDFD_GETFD = {pidfd_getfd}
PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
def argv(pid):
    return open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\0")

# The agent is the Python process running the agent module (bubblewrap, pid 1, also names it).
agent = next(
    int(pid) for pid in os.listdir("/proc") if pid.isdigit()
    and os.path.basename(argv(pid)[0]).startswith(b"python")
    and any(b"langchain_e2b.local.agent" in arg for arg in argv(pid))
)
result = {{"agent": agent, "taken": [], "ptrace": None, "pidfd_getfd": None, "environ": None}}
if libc.ptrace(PTRACE_SEIZE, agent, None, None) == 0:
    result["ptrace"] = "attached"
    libc.ptrace(PTRACE_DETACH, agent, None, None)
else:
    result["ptrace"] = os.strerror(ctypes.get_errno())
pidfd = libc.syscall(SYS_PIDFD_OPEN, agent, 0)
for target in range(64):
    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
    if fd < 0:
        result["pidfd_getfd"] = os.strerror(ctypes.get_errno())
        continue
    try:
        sock = socket.socket(fileno=fd)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            result["taken"].append(target)
        sock.detach()
    except OSError:
        pass
    os.close(fd)
try:
    result["environ"] = len(open(f"/proc/{{agent}}/environ", "rb").read())
except OSError as exc:
    result["environ"] = exc.strerror
print(json.dumps(result))
"""
# x86-64 and arm64 share these numbers (calls added after 5.x are numbered alike).
PIDFD_OPEN, PIDFD_GETFD = 434, 438


def test_sandbox_code_cannot_take_the_agents_socket_or_trace_it(hostile: Hostile) -> None:
    attacker = hostile.sandbox()
    attacker.files.write(
        "/tmp/attack.py", ATTACK.format(pidfd_open=PIDFD_OPEN, pidfd_getfd=PIDFD_GETFD)
    )
    code, out, err = sh(attacker, "python3 /tmp/attack.py")
    assert code == 0, err
    result = json.loads(out)
    assert result["taken"] == [], "sandbox code took the agent's listening socket"
    assert result["ptrace"] == "Operation not permitted"
    assert result["pidfd_getfd"] == "Operation not permitted"
    assert result["environ"] == "Permission denied"
    # The agent keeps serving the sandbox: nobody else answered.
    assert attacker.commands.run("echo still-mine").stdout.strip() == "still-mine"
