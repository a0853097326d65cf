"""E2B's layout and ``sudo``: files anywhere in the sandbox's own filesystem, ``/root``, sudo.

On E2B a sandbox can create files anywhere in its own filesystem, has ``/root``, and gives the
user passwordless ``sudo``. Here the jail's root is a writable tmpfs of the sandbox's disk size
(``/home/user`` and ``/tmp`` share it), and ``sudo`` runs the command as the same user with no
new privilege.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from e2b import CommandExitException
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import Limits, LocalRuntime
from tests.local_runtime.test_python_env import _tiny_wheel

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="checks the local runtime's layout and sudo"
)
MiB = 1024**2


@pytest.fixture(scope="module")
def sandbox(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sandbox = Sandbox.create(**e2b_connection)
    try:
        yield sandbox
    finally:
        sandbox.kill()


def _sh(sandbox: Sandbox, cmd: str, timeout: float = 60) -> tuple[int, str, str]:
    try:
        done = sandbox.commands.run(cmd, timeout=timeout)
    except CommandExitException as exc:
        return exc.exit_code, exc.stdout, exc.stderr
    return done.exit_code, done.stdout, done.stderr


def test_files_anywhere_in_the_sandboxs_own_filesystem(sandbox: Sandbox) -> None:
    # E2B's own SDK tests write /0/file.
    sandbox.files.write("/0/file", "zero")
    assert sandbox.files.read("/0/file") == "zero"
    code, out, err = _sh(sandbox, "mkdir -p /opt/x && echo ok > /opt/x/y && cat /opt/x/y")
    assert (code, out.strip()) == (0, "ok"), err
    code, out, err = _sh(sandbox, "echo data > /srv-data && cat /srv-data && ls -d /root")
    assert (code, out.split()) == (0, ["data", "/root"]), err


def test_system_directories_stay_read_only(sandbox: Sandbox) -> None:
    code, _, err = _sh(sandbox, "touch /usr/bin/new-tool")
    assert code != 0
    assert "Read-only file system" in err


def test_a_code_context_in_root(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context(cwd="/root")
    execution = sandbox.run_code(
        "import os; open('notes.txt', 'w').write('x'); print(os.getcwd())", context=context
    )
    assert execution.error is None, execution.error
    assert "".join(execution.logs.stdout).strip() == "/root"
    assert sandbox.files.read("/root/notes.txt") == "x"


def test_sudo_runs_the_command_as_the_same_user(sandbox: Sandbox) -> None:
    checks = {
        "sudo echo hi": "hi",
        "sudo whoami": "user",
        "sudo -u root id -u": "1000",
        "sudo -n true && echo yes": "yes",
        "sudo -E sh -c 'echo $HOME'": "/home/user",
        "sudo -nE -- printenv HOME": "/home/user",
        "sudo -i pwd": "/home/user",
        "sudo -s 'echo $((6 * 7))'": "42",
        "sudo FOO=bar printenv FOO": "bar",
        "echo piped | sudo tee /tmp/sudo-tee": "piped",
        "sudo printenv SUDO_USER": "user",
        "sudo -v && echo validated": "validated",
    }
    for cmd, expected in checks.items():
        code, out, err = _sh(sandbox, cmd)
        assert (code, out.strip()) == (0, expected), f"{cmd}: {err}"
    code, _, err = _sh(sandbox, "sudo -u nobody true")
    assert code == 1
    assert "as 'user'" in err
    code, _, err = _sh(sandbox, "sudo no-such-command-e2b")
    assert code != 0
    assert "no-such-command-e2b" in err


def test_sudo_pip_install(sandbox: Sandbox) -> None:
    sandbox.files.write("/tmp/hello_e2b-1.0-py3-none-any.whl", _tiny_wheel())
    code, out, err = _sh(
        sandbox,
        "sudo pip install --no-index /tmp/hello_e2b-1.0-py3-none-any.whl >/dev/null && "
        "python -c 'import hello_e2b; print(hello_e2b.VALUE)'",
        timeout=120,
    )
    assert (code, out.strip()) == (0, "42"), err


@pytest.mark.skipif(shutil.which("npm") is None, reason="no npm on this host")
def test_npm_install_global(sandbox: Sandbox) -> None:
    package = {"name": "hello-e2b", "version": "1.0.0", "bin": {"hello-e2b": "cli.js"}}
    sandbox.files.write("/tmp/pkg/package.json", json.dumps(package))
    sandbox.files.write("/tmp/pkg/cli.js", "#!/usr/bin/env node\nconsole.log('hi from npm')\n")
    code, out, err = _sh(
        sandbox,
        "cd /tmp/pkg && npm pack --silent >/dev/null && "
        "npm install -g --offline --no-audit --no-fund ./hello-e2b-1.0.0.tgz >/dev/null && "
        "hello-e2b",
        timeout=180,
    )
    assert (code, out.strip()) == (0, "hi from npm"), err


def test_the_writable_root_shares_the_disk_limit() -> None:
    # One budget for everything a sandbox writes: its root, /home/user and /tmp together.
    with LocalRuntime(pool_size=0, limits=Limits(disk_bytes=32 * MiB)) as runtime:
        sandbox = Sandbox.create(**runtime.connection_options())
        try:
            code, _, err = _sh(
                sandbox,
                "head -c 12M /dev/zero > /fill1 && head -c 12M /dev/zero > /home/user/fill2 "
                "&& head -c 12M /dev/zero > /tmp/fill3",
            )
            assert code != 0
            assert "No space left on device" in err
            code, out, _ = _sh(sandbox, "df -m --output=size / | tail -1")
            assert int(out) <= 32
        finally:
            sandbox.kill()
