"""The sandbox's Python: the runtime's interpreter and packages, and pip installs that stick."""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import pytest
from e2b_code_interpreter import Sandbox

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="checks the local runtime's Python layout"
)


def _tiny_wheel() -> bytes:
    """A minimal pure-Python wheel, built in memory (the sandbox has no network)."""
    files = {
        "hello_e2b/__init__.py": "VALUE = 42\n",
        "hello_e2b-1.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: hello-e2b\nVersion: 1.0\n"
        ),
        "hello_e2b-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "hello_e2b-1.0.dist-info/RECORD,,\n"
    files["hello_e2b-1.0.dist-info/RECORD"] = record
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_shell_and_kernel_share_python_and_installs(e2b_connection: dict[str, Any]) -> None:
    sandbox = Sandbox.create(**e2b_connection)
    try:
        found = sandbox.commands.run("command -v python3 pip && python3 -c 'import numpy'")
        assert found.stdout.split() == ["/opt/e2b/venv/bin/python3", "/opt/e2b/venv/bin/pip"]
        sandbox.files.write("/tmp/hello_e2b-1.0-py3-none-any.whl", _tiny_wheel())
        installed = sandbox.commands.run(
            "pip install --no-index /tmp/hello_e2b-1.0-py3-none-any.whl", timeout=120
        )
        assert "Successfully installed hello-e2b-1.0" in installed.stdout
        assert sandbox.run_code("import hello_e2b\nhello_e2b.VALUE").text == "42"
        again = sandbox.commands.run("python3 -c 'import hello_e2b; print(hello_e2b.VALUE)'")
        assert again.stdout.strip() == "42"
    finally:
        sandbox.kill()
