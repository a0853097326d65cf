"""Hostile code tries to read the host's files, the runtime's files and other sandboxes' files."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from e2b import FileNotFoundException, SandboxException
from e2b_code_interpreter import Sandbox

from tests.security.conftest import Hostile, py, sh

# Directories a search for host files walks: everything but /proc (searched separately) and the
# read-only system trees that are the host's own /usr and /etc on purpose.
_SEARCH = (
    "find / -xdev \\( -path /proc -o -path /usr -o -path /sys \\) -prune -o -print 2>/dev/null"
)


@pytest.fixture(scope="module")
def attacker(hostile: Hostile) -> Sandbox:
    return hostile.sandbox()


@pytest.mark.timeout(480)
def test_host_canary_files_are_unreachable_by_any_path(hostile: Hostile, attacker: Sandbox) -> None:
    for canary in hostile.canary_files:
        assert canary.read_text() == hostile.secret  # the host itself can read it
        paths = [str(canary), f"/proc/1/root{canary}", f"/proc/self/root{canary}"]
        code, out, _ = sh(attacker, "for p in " + " ".join(paths) + "; do cat $p; done")
        assert hostile.secret not in out
        assert code != 0
        # Through every process the sandbox can see, and by name anywhere in its filesystem.
        code, out, _ = sh(
            attacker,
            f"cat /proc/[0-9]*/root{canary} /proc/[0-9]*/cwd/{canary.name} 2>/dev/null; "
            f"{_SEARCH} | grep -F {canary.name}",
        )
        assert hostile.secret not in out
        assert canary.name not in out
    # Reading every file the sandbox can see (the runtime's Python and packages under /opt
    # included) takes a while on a busy machine.
    _, out, _ = sh(
        attacker, f"grep -rsl {hostile.secret} /etc /home /tmp /run /dev /opt", timeout=300
    )
    assert out.strip() == ""


def test_host_home_root_and_tmp_are_not_the_hosts(hostile: Hostile, attacker: Sandbox) -> None:
    # /root is the jail's own, empty (as on E2B, it exists).
    code, out, err = sh(attacker, "ls -A /root")
    assert (code, out.strip()) == (0, ""), err
    _, out, _ = sh(attacker, "ls -A /home; ls -A /tmp")
    assert out.split() == ["user"]  # the sandbox's own home, and an empty /tmp of its own
    host_tmp_names = set(os.listdir("/tmp"))
    assert host_tmp_names, "the host's /tmp has entries (this test's own canary at least)"
    _, out, _ = sh(attacker, "ls -A /tmp")
    assert not host_tmp_names & set(out.split())


def test_runtime_data_dirs_are_not_visible(hostile: Hostile, attacker: Sandbox) -> None:
    for directory in hostile.data_dirs:
        assert directory.is_dir()
        code, _, err = sh(attacker, f"ls -A {directory}")
        assert code != 0, f"{directory} is visible in the sandbox"
        assert "No such file" in err
    # The socket the gateway speaks to this very sandbox through is not in its filesystem.
    _, out, _ = sh(attacker, f"{_SEARCH} | grep -E '\\.sock$|/le2b-' || true")
    assert out.strip() == ""


def test_files_written_in_a_sandbox_never_reach_the_host_disk(
    hostile: Hostile, attacker: Sandbox
) -> None:
    name = "written-" + secrets.token_hex(6)
    sh(attacker, f"echo data > /home/user/{name}; echo data > /tmp/{name}")
    for directory in [*hostile.data_dirs, Path("/tmp")]:
        # os.walk skips directories that vanish mid-walk (other runtimes come and go in /tmp).
        found = [
            os.path.join(folder, name) for folder, _, files in os.walk(directory) if name in files
        ]
        assert found == [], f"sandbox file {name} showed up on the host at {found}"


# A second sandbox's files, reached by path, /proc, symlink, hard link or mount: never.


@pytest.fixture(scope="module")
def victim(hostile: Hostile) -> tuple[Sandbox, str]:
    victim = hostile.sandbox()
    secret = "victim-" + secrets.token_hex(12)
    victim.files.write("/home/user/secret.txt", secret)
    sh(victim, f"echo {secret} > /tmp/secret.txt; echo {secret} > /dev/shm/secret.txt")
    return victim, secret


def test_by_path_and_proc(hostile: Hostile, attacker: Sandbox, victim: tuple[Sandbox, str]) -> None:
    sandbox, secret = victim
    pid = hostile.host_pid(sandbox)
    assert Path(f"/proc/{pid}").exists()  # the host sees the victim's jail...
    _, out, _ = sh(
        attacker,
        "cat /home/user/secret.txt /tmp/secret.txt /dev/shm/secret.txt "
        f"/proc/{pid}/root/home/user/secret.txt /proc/[0-9]*/root/tmp/secret.txt "
        f"/proc/[0-9]*/root/home/user/secret.txt 2>&1; ls /proc/{pid} 2>&1",
    )
    assert secret not in out  # ...the attacker does not
    assert sandbox.files.read("/home/user/secret.txt") == secret  # and the secret is there


def test_by_symlink_and_hard_link(
    hostile: Hostile, attacker: Sandbox, victim: tuple[Sandbox, str]
) -> None:
    sandbox, secret = victim
    pid = hostile.host_pid(sandbox)
    code, out, err = sh(
        attacker,
        f"ln -s /proc/{pid}/root/home/user/secret.txt /home/user/sym; cat /home/user/sym; "
        f"ln /proc/{pid}/root/home/user/secret.txt /home/user/hard; "
        "ln /etc/hostname /home/user/hard2; cat /home/user/hard /home/user/hard2",
    )
    assert secret not in out
    assert code != 0
    # The symlink through the files API: envd resolves it inside the attacker's jail.
    with pytest.raises((FileNotFoundException, SandboxException)):
        attacker.files.read("/home/user/sym")
    # A hard link across filesystems (the jail's tmpfs, the host's read-only /etc) fails.
    assert "Invalid cross-device link" in err or "Operation not permitted" in err


def test_by_bind_mount(attacker: Sandbox, victim: tuple[Sandbox, str]) -> None:
    _, secret = victim
    code, out, err = sh(
        attacker,
        "mkdir -p /home/user/m; mount --bind / /home/user/m && ls /home/user/m; "
        "mount -t proc proc /home/user/m && cat /home/user/m/*/root/home/user/secret.txt",
    )
    assert secret not in out
    assert "must be superuser" in err or "not permitted" in err.lower()
    assert code != 0


def test_victim_is_unharmed(victim: tuple[Sandbox, str]) -> None:
    sandbox, secret = victim
    assert py(sandbox, "print(open('/home/user/secret.txt').read())").strip() == secret
