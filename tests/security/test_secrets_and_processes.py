"""Hostile code looks for the host's secrets and processes, and tries to leave its jail."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from e2b_code_interpreter import Sandbox

from tests.security.conftest import CANARY_ENV, Hostile, py, sh


@pytest.fixture(scope="module")
def attacker(hostile: Hostile) -> Sandbox:
    return hostile.sandbox()


@pytest.fixture
def host_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A host process (owned by the runtime's user) for the sandbox to attack."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_host_environment_secrets_are_not_visible(hostile: Hostile, attacker: Sandbox) -> None:
    # The canaries really are in the environment of the process that runs the runtime.
    assert all(os.environ[name] == hostile.secret for name in CANARY_ENV)
    env = py(attacker, "import os; print(sorted(os.environ.items()))")
    assert hostile.secret not in env
    assert not any(f"'{name}'" in env for name in CANARY_ENV)
    # Every environment and command line the sandbox can read, its own processes' included
    # (pid 1 is the jail's init, started by the runtime).
    _, out, _ = sh(
        attacker,
        f"grep -a -l -F {hostile.secret} /proc/[0-9]*/environ /proc/[0-9]*/cmdline "
        '| grep -v -e /self/ -e /thread-self/ -e "/$$/"',
    )
    own = {line for line in out.split() if line}
    # The grep itself has the secret on its command line; nothing else may.
    leaks = [p for p in own if "cmdline" not in p or not _is_grep(attacker, p)]
    assert leaks == [], f"the secret is readable in {leaks}"
    assert hostile.secret not in sh(attacker, "cat /proc/1/environ | tr '\\0' '\\n'")[1]


def _is_grep(sandbox: Sandbox, cmdline_path: str) -> bool:
    _, out, _ = sh(sandbox, f"cat {cmdline_path} 2>/dev/null | tr '\\0' ' '")
    return out.startswith("grep") or out == ""


def test_api_key_and_access_tokens_do_not_reach_the_sandbox(
    hostile: Hostile, attacker: Sandbox
) -> None:
    key = hostile.runtime.api_key
    tokens = [attacker._envd_access_token, attacker.traffic_access_token]
    assert all(tokens)
    for needle in [key, *tokens]:
        _, out, _ = sh(
            attacker,
            f"grep -rsl -F -- {needle} /proc/[0-9]*/environ /etc /home /tmp /run /dev /opt/e2b/lib "
            f"| grep -v -e /self/ -e /thread-self/",
        )
        assert out.strip() == "", f"found in {out}"


def test_ps_shows_only_the_sandbox(hostile: Hostile, attacker: Sandbox) -> None:
    _, out, _ = sh(attacker, "ps -e -o pid=,args=")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    pids = [int(line.split()[0]) for line in lines]
    assert max(pids) < 1000, "pids are the jail's own, numbered from 1"
    assert 1 in pids
    assert not any("pytest" in line for line in lines)
    assert str(os.getpid()) not in {line.split()[0] for line in lines} or os.getpid() < 1000
    # The host has many more processes than the handful in the jail.
    host_pids = [name for name in os.listdir("/proc") if name.isdigit()]
    assert len(host_pids) > len(pids)


def test_cannot_signal_or_ptrace_host_processes(
    hostile: Hostile, attacker: Sandbox, host_sleeper: subprocess.Popen[bytes]
) -> None:
    pid = host_sleeper.pid
    out = py(
        attacker,
        f"""
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
for target in ({pid}, {os.getpid()}):
    try:
        os.kill(target, signal.SIGKILL)
        print("killed", target)
    except ProcessLookupError:
        print("no such process", target)
    except PermissionError:
        print("not permitted", target)
    rc = libc.ptrace(16, target, None, None)  # PTRACE_ATTACH
    print("ptrace", target, rc, os.strerror(ctypes.get_errno()))
""",
    )
    # Host pids do not exist in the jail's PID namespace (the jail's own are numbered from 1).
    assert f"no such process {pid}" in out
    assert f"no such process {os.getpid()}" in out
    assert f"ptrace {pid} -1 No such process" in out
    assert host_sleeper.poll() is None, "the host process was killed from inside the sandbox"


def test_kill_everything_inside_only_ends_the_sandbox(
    hostile: Hostile, host_sleeper: subprocess.Popen[bytes]
) -> None:
    bystander = hostile.sandbox()
    suicidal = hostile.sandbox()
    with pytest.raises(Exception):  # noqa: B017 - the sandbox takes its own agent down
        suicidal.commands.run("kill -9 -1; sleep 5", timeout=30)
    assert host_sleeper.poll() is None
    assert py(bystander, "print(6 * 7)").strip() == "42"
    assert not suicidal.is_running()


def test_read_only_system_paths(hostile: Hostile, attacker: Sandbox) -> None:
    targets = [
        "/usr/bin/le2b-x",
        "/etc/le2b-x",
        "/opt/e2b/lib/langchain_e2b/le2b-x",
        "/dev/le2b-x",
        "/etc/passwd",
    ]
    for target in targets:
        code, _, err = sh(attacker, f"echo pwned >> {target}")
        assert code != 0, f"{target} is writable"
        assert "Read-only file system" in err or "Permission denied" in err
    assert not os.path.exists("/usr/bin/le2b-x")
    assert not os.path.exists("/etc/le2b-x")


def test_no_privileges_to_gain(hostile: Hostile, attacker: Sandbox) -> None:
    out = py(
        attacker,
        """
import os
lines = open('/proc/self/status').read().splitlines()
status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)
print(status['NoNewPrivs'].strip(), status['CapEff'].strip(), status['CapBnd'].strip())
for fn in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.chroot('/tmp')):
    try:
        fn()
        print('gained')
    except OSError:  # EPERM, or EINVAL for a uid the jail does not map
        print('denied')
""",
    )
    nnp, cap_eff, cap_bnd, *results = out.split()
    assert nnp == "1"  # no_new_privs: a setuid binary cannot raise privileges
    assert int(cap_eff, 16) == 0
    assert int(cap_bnd, 16) == 0
    assert results == ["denied"] * 3


def test_setuid_binaries_give_nothing(hostile: Hostile, attacker: Sandbox) -> None:
    setuid = [p for p in ("/usr/bin/su", "/usr/bin/mount", "/usr/bin/passwd") if _is_setuid(p)]
    if not setuid:
        pytest.skip("the host has no setuid-root su, mount or passwd binary to try")
    # Copying a binary and setting the bit on the copy makes it setuid to the sandbox user only.
    for binary in setuid:
        _, out, _ = sh(attacker, f"echo | {binary} root -c 'id -u' 2>&1")
        assert out.strip() != "0", f"{binary} gave root inside the sandbox"
    _, out, _ = sh(attacker, "su root -c 'id -u' </dev/null; id -u")
    assert out.split()[-1] == "1000"
    assert "0" not in out.split()[:-1]


def _is_setuid(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return bool(st.st_mode & 0o4000) and st.st_uid == 0


def test_no_new_namespaces_or_mounts(hostile: Hostile, attacker: Sandbox) -> None:
    for cmd in (
        "unshare --user --map-root-user id -u",
        "unshare --mount true",
        "unshare --net true",
        "mount -t tmpfs none /home/user",
        "mount --bind /home/user /tmp",
    ):
        code, out, _ = sh(attacker, cmd)
        assert code != 0, f"`{cmd}` succeeded inside the sandbox: {out}"
    assert sh(attacker, "id -u")[1].strip() == "1000"
