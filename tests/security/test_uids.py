"""Host uids of sandboxes: never shared between runtimes, never an account's, freed when done."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime, reservations
from tests.reliability.conftest import descendants
from tests.reliability.local_server import Server, gone, serve

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes get host uids of their own as root"),
]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _jail_uids(root: int) -> set[int]:
    """Host uids of the processes below ``root`` (a runtime's jails and what runs in them)."""
    uids = set()
    for pid in [p for p, _ in descendants(root)]:
        with contextlib.suppress(OSError):
            uids.add(os.stat(f"/proc/{pid}").st_uid)
    return uids - {os.getuid()}


def _holder(uid: int) -> str | None:
    """Pid and owner written in the uid's lock file, if it is reserved."""
    path = reservations.state_dir() / "uids" / str(uid)
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    return None


def test_two_runtimes_never_share_a_host_uid(servers: list[Server], tmp_path: Path) -> None:
    other = serve(tmp_path / "other", pool=0)
    servers.append(other)
    for _ in range(2):
        Sandbox.create(**other.options).commands.run("true")
    with LocalRuntime(pool_size=0) as runtime:
        ours = [Sandbox.create(**runtime.connection_options()) for _ in range(2)]
        assert runtime.gateway is not None
        # This test process may run other runtimes too (the suite's shared one): count only the
        # jails of this runtime's two sandboxes, and what runs in them.
        our_jails = [runtime.gateway.sandboxes[s.sandbox_id].proc.pid for s in ours]
        our_uids = set().union(
            *({os.stat(f"/proc/{jail}").st_uid} | _jail_uids(jail) for jail in our_jails)
        )
        their_uids = _jail_uids(other.proc.pid)
        assert len(their_uids) == 2, their_uids
        assert len(our_uids) == 2, our_uids
        assert not our_uids & their_uids, "a uid is shared between the runtimes"
        for uid in their_uids | our_uids:
            with pytest.raises(KeyError):
                pwd.getpwuid(uid)
        holders = {_holder(uid) for uid in our_uids}
        assert all(h is not None and h.startswith(f"{os.getpid()} ") for h in holders), holders
        sandbox = ours.pop()
        jail = runtime.gateway.sandboxes[sandbox.sandbox_id].proc.pid
        uid = os.stat(f"/proc/{jail}").st_uid
        sandbox.kill()
        holder = _holder(uid)
        assert holder is None or not holder.startswith(f"{os.getpid()} "), "not released"


def test_a_crashed_runtimes_uids_are_reclaimed(servers: list[Server], tmp_path: Path) -> None:
    crashed = serve(tmp_path / "crashed", pool=0)
    servers.append(crashed)
    sandbox = Sandbox.create(**crashed.options)
    [uid] = _jail_uids(crashed.proc.pid)
    assert _holder(uid) == f"{crashed.proc.pid} {sandbox.sandbox_id}"
    processes = crashed.processes()
    crashed.proc.send_signal(signal.SIGKILL)
    crashed.proc.wait(timeout=30)
    assert gone(processes) == []
    # Its lock went with the process, but the file still names it.
    assert _holder(uid) == f"{crashed.proc.pid} {sandbox.sandbox_id}"
    with LocalRuntime(pool_size=0):
        # Starting removed it (unless a process of an older runtime still runs as that uid).
        holder = _holder(uid)
        assert holder is None or not holder.startswith(f"{crashed.proc.pid} ")


def test_account_and_subordinate_uids_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = reservations.UID_BASE
    # As if /etc/subuid gave someone the first ten uids of our range.
    monkeypatch.setattr(reservations, "_sub_ranges", lambda: [(base, base + 10)])
    # Other runtimes on this host may be running sandboxes: only the lock files here count.
    monkeypatch.setattr(reservations, "_uids_in_use", set)
    first = reservations.UidPool(tmp_path)
    second = reservations.UidPool(tmp_path)
    a, b = first.reserve("a"), second.reserve("b")
    assert a == base + 10
    assert b == base + 11
    first.release("a")
    assert not (tmp_path / "uids" / str(a)).exists()
    assert second.reserve("c") == base + 10
    second.close()
    assert reservations._taken_by_account(0, [])
    assert (tmp_path / "uids").stat().st_mode & 0o777 == 0o700
