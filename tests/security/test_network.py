"""With internet access off, a sandbox reaches nothing outside itself, this machine included."""

from __future__ import annotations

import ast
import secrets
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from e2b_code_interpreter import Sandbox

from tests.security.conftest import Hostile, py

_CONNECT = """
import socket
results = []
for family, address in {targets!r}:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(address)
        results.append(("connected", address, s.recv(64).decode(errors="replace")))
    except OSError as exc:
        results.append(("refused", address, exc.strerror))
    finally:
        s.close()
print(repr(results))
"""


class _Listener:
    """A loopback service on the host that answers every connection with a secret."""

    def __init__(self, family: int, address: tuple[str, int] | str) -> None:
        self.secret = "host-service-" + secrets.token_hex(8)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            with conn:
                conn.sendall(self.secret.encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def tcp_service() -> Iterator[_Listener]:
    listener = _Listener(socket.AF_INET, ("127.0.0.1", 0))
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def abstract_service() -> Iterator[_Listener]:
    # Abstract unix sockets belong to the network namespace, not to the filesystem.
    listener = _Listener(socket.AF_UNIX, "\0le2b-" + secrets.token_hex(6))
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def attacker(hostile: Hostile) -> Sandbox:
    return hostile.sandbox()


def _attempt(sandbox: Sandbox, targets: list[tuple[int, object]]) -> list[tuple[str, ...]]:
    plain = [(int(family), address) for family, address in targets]
    return ast.literal_eval(py(sandbox, _CONNECT.format(targets=plain)))


def test_host_loopback_services_are_unreachable(
    hostile: Hostile, attacker: Sandbox, tcp_service: _Listener
) -> None:
    # The host can reach its own service, so the port really is open.
    with socket.create_connection(tcp_service.address, timeout=5) as probe:
        assert probe.recv(64).decode() == tcp_service.secret
    runtime_port = urlparse(hostile.runtime.url).port
    assert runtime_port is not None
    port = tcp_service.address[1]
    targets: list[tuple[int, object]] = [
        (socket.AF_INET, ("127.0.0.1", port)),
        (socket.AF_INET, ("localhost", port)),
        (socket.AF_INET, ("127.0.0.1", runtime_port)),
        (socket.AF_INET6, ("::1", port)),
        (socket.AF_INET6, ("::1", runtime_port)),
    ]
    results = _attempt(attacker, targets)
    assert [r[0] for r in results] == ["refused"] * len(targets), results
    assert tcp_service.accepted == 1  # only the host's own probe


def test_abstract_unix_sockets_of_the_host_are_unreachable(
    attacker: Sandbox, abstract_service: _Listener
) -> None:
    results = _attempt(attacker, [(socket.AF_UNIX, abstract_service.address)])
    assert results[0][0] == "refused", results
    assert abstract_service.accepted == 0


def test_only_loopback_interface(attacker: Sandbox) -> None:
    names = py(attacker, "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert names.strip() == "['lo']"


def test_asking_for_internet_access_gets_no_network(hostile: Hostile) -> None:
    # The server's policy wins: older SDK releases ask for the internet on every create.
    sandbox = hostile.sandbox(allow_internet_access=True)
    names = py(sandbox, "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert names.strip() == "['lo']"
