"""The I/O-free part of ``install_packages``: what pip and npm printed, read for the model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_e2b._packages import (
    OFFLINE_EXIT,
    install_command,
    is_network_failure,
    name_of,
    strip_ansi,
    summarize,
)


def test_ansi_escapes_are_stripped() -> None:
    coloured = "\x1b[31mERROR:\x1b[0m bad\x1b[2K\r\x1b]0;title\x07 done \x1b[1;33mwarn\x1b[m"
    assert strip_ansi(coloured) == "ERROR: bad\r done warn"


def test_pip_summary_separates_new_from_already_installed() -> None:
    stdout = (
        "Defaulting to user installation because normal site-packages is not writeable\n"
        "Requirement already satisfied: numpy in /opt/venv/lib/python3.11/site-packages (2.4.6)\n"
        "Collecting tinydb\n"
        "  Downloading tinydb-4.8.0-py3-none-any.whl (24 kB)\n"
        "Requirement already satisfied: six in /opt/venv (from tinydb) (1.16.0)\n"
        "Installing collected packages: tinydb\n"
        "Successfully installed tinydb-4.8.0\n"
        "WARNING: something the model may want to know\n"
    )
    installed, present, rest = summarize(stdout, ["numpy", "tinydb"], "pip")
    assert installed == ["tinydb-4.8.0"]
    assert present == ["numpy"]
    assert rest == "WARNING: something the model may want to know"


def test_npm_summary() -> None:
    assert summarize("\nadded 1 package in 2s\n", ["lodash"], "npm") == (["lodash"], [], "")
    assert summarize("\nup to date in 1s\n", ["lodash"], "npm") == ([], ["lodash"], "")


def test_network_failures_are_recognised() -> None:
    pip = "Failed to resolve 'pypi.org' ([Errno -3] Temporary failure in name resolution)"
    npm = "npm error code ENOTFOUND\nnpm error getaddrinfo ENOTFOUND registry.npmjs.org"
    assert is_network_failure(pip)
    assert is_network_failure(npm)
    assert not is_network_failure("ERROR: No matching distribution found for nosuchpkg")


@pytest.mark.parametrize(
    ("spec", "name"), [("numpy>=1.26", "numpy"), ("pandas[xml]", "pandas"), ("@s/p@^1", "@s/p")]
)
def test_name_of(spec: str, name: str) -> None:
    assert name_of(spec) == name


def test_offline_check_runs_in_bash_and_answers_for_what_is_installed() -> None:
    # The guard's condition is replaced by `true`, so this runs the offline branch on this host.
    command = install_command(["pytest", "no-such-package-xyz"], "pip")
    offline = "if true; then" + command.split("; then", 1)[1]
    # python3 must be this interpreter, which has pytest installed.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def bash(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, check=False, env=env
        )

    done = bash(offline)
    assert done.returncode == OFFLINE_EXIT
    assert "Requirement already satisfied: pytest" in done.stdout
    only_installed = offline.replace(" no-such-package-xyz", "")
    done = bash(only_installed)
    assert done.returncode == 0, done.stderr
