"""Deno's kernel is on loopback TCP: a sandbox sharing the host network cannot run code in it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from e2b import SandboxException
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime
from tests.security.conftest import Hostile, py

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def _process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _listening_ports(pid: int) -> list[int]:
    """Loopback TCP ports ``pid`` listens on (read on the host, as root)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = []
    with open(f"/proc/{pid}/net/tcp") as table:
        for row in list(table)[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                ports.append(int(local.split(":")[1], 16))
    return sorted(ports)


@pytest.fixture(scope="module")
def networked() -> Iterator[LocalRuntime]:
    """A runtime whose sandboxes may share the host's network (and its loopback)."""
    runtime = LocalRuntime(pool_size=0, allow_internet=True)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def _deno_kernel(sandbox_pid: int) -> tuple[list[int], str]:
    """The loopback ports of the sandbox's Deno kernel and the key that signs its messages."""
    for pid in _process_tree(sandbox_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode().split("\0")
        except OSError:
            continue
        if len(args) > 4 and args[0].endswith("deno") and args[1] == "jupyter":
            # The connection file, read through the kernel's own root (the jail's /run).
            with open(f"/proc/{pid}/root{args[args.index('--conn') + 1]}") as f:
                key = json.load(f)["key"]
            return _listening_ports(pid), key
    raise AssertionError("no Deno kernel in the sandbox")


# Signed (or unsigned) execute requests sent straight over ZeroMQ: no client threads, no
# heartbeat, one socket per port and key, and a send timeout: a port whose socket takes no
# requests never completes the handshake, and a send to it would wait forever. Each socket is
# closed by hand: inside a kernel, a socket dropped without close made the context's term() hang.
_SEND = """\
import time
import zmq
from jupyter_client.session import Session
context = zmq.Context()
sockets = []
for port in {ports!r}:
    for key in {keys!r}:
        socket = context.socket(zmq.DEALER)
        sockets.append(socket)
        socket.setsockopt(zmq.SNDTIMEO, 3000)
        socket.connect(f'tcp://127.0.0.1:{{port}}')
        try:
            Session(key=key.encode()).send(socket, 'execute_request', {{
                'code': "Deno.writeTextFileSync('/home/user/{name}', 'x')", 'silent': False,
                'store_history': True, 'user_expressions': {{}}, 'allow_stdin': False,
                'stop_on_error': True}})
        except zmq.Again:
            pass  # a port that takes no requests (IOPub, heartbeat) never becomes a peer
time.sleep(2)
for socket in sockets:
    socket.close(linger=0)
context.term()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="reads another process's sockets on the host")
def test_other_sandbox_cannot_run_code_in_a_javascript_context(networked: LocalRuntime) -> None:
    options = networked.connection_options()
    victim = Sandbox.create(allow_internet_access=True, **options)
    attacker = Sandbox.create(allow_internet_access=True, **options)
    try:
        assert victim.run_code("1 + 1", language="js").text == "2"
        assert networked.gateway is not None
        ports, key = _deno_kernel(networked.gateway.sandboxes[victim.sandbox_id].proc.pid)
        # Shell, IOPub, stdin, control and heartbeat.
        assert len(ports) >= 5, ports
        reached = py(
            attacker,
            "import socket\n"
            f"for port in {ports!r}:\n"
            "    socket.create_connection(('127.0.0.1', port), timeout=5).close()\n"
            "print('reached')",
        )
        # The attacker reaches every port: only the messages' signature can stop it.
        assert reached == "reached\n"
        py(attacker, _SEND.format(ports=ports, keys=["guessed-key", ""], name="pwned"))
        time.sleep(1)
        assert not victim.files.exists("/home/user/pwned")
        # The same attack with the key (which only the victim's agent holds) does run code:
        # what stopped it above was the signature check.
        py(attacker, _SEND.format(ports=ports, keys=[key], name="control"))
        deadline = time.monotonic() + 10
        while not victim.files.exists("/home/user/control") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert victim.files.exists("/home/user/control")
        assert victim.run_code("40 + 2", language="js").text == "42"
    finally:
        victim.kill()
        attacker.kill()


def test_too_small_a_memory_limit_for_deno_says_so(hostile: Hostile) -> None:
    # The hostile runtime's sandboxes have 768 MiB: too little address space for V8.
    sandbox = hostile.sandbox()
    with pytest.raises(SandboxException) as info:
        sandbox.run_code("1", language="js")
    assert "at least 1.5 GiB" in str(info.value)
    assert "768 MiB" in str(info.value)
    # The Python context is unaffected.
    assert sandbox.run_code("1 + 1").text == "2"
