"""The local runtime (``langchain_e2b.local``) imports nothing from the LangChain side.

The runtime is an E2B server that ships in the same distribution: its in-jail agent runs in
every sandbox, where LangChain, LangGraph and the E2B SDK would only cost memory. Each check runs
in a fresh interpreter, so nothing this test process imported counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_IMPORT_ALL = """
import importlib, pkgutil
import langchain_e2b.local as local
for info in pkgutil.iter_modules(local.__path__):
    importlib.import_module("langchain_e2b.local." + info.name)
"""


def _modules_after(code: str) -> list[str]:
    """The names in ``sys.modules`` after a fresh interpreter runs ``code``."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout.splitlines()[-1])
    return names


def _langchain_side(modules: list[str]) -> list[str]:
    """The LangChain-side modules among ``modules``: LangChain's own and the package's."""
    outside = ("langchain_core", "langchain", "langgraph", "deepagents")
    return [
        name
        for name in modules
        if name.split(".")[0] in outside
        or (name.startswith("langchain_e2b.") and not name.startswith("langchain_e2b.local"))
    ]


def test_every_runtime_module_imports_nothing_from_the_langchain_side() -> None:
    modules = _modules_after(_IMPORT_ALL)
    assert "langchain_e2b.local.interpreter" in modules  # the walk imported the modules
    assert _langchain_side(modules) == []


def test_the_runtime_package_loads_no_server_until_asked() -> None:
    # The agent imports langchain_e2b.local on its way to langchain_e2b.local.agent: the
    # package's __init__ must not bring the gateway, the supervisor or cgroups with it.
    modules = _modules_after("import langchain_e2b.local")
    assert [m for m in modules if m.startswith("langchain_e2b.local.")] == []


def test_a_plain_import_of_the_runtime_loads_nothing_from_the_langchain_side() -> None:
    # What ``python -m langchain_e2b.local.agent`` imports before the agent's own code: the
    # root package's names load on first use, so nothing of the LangChain side or the SDK.
    modules = _modules_after("import langchain_e2b.local")
    assert _langchain_side(modules) == []
    assert "e2b" not in modules


def test_the_root_package_loads_a_public_name_on_first_use() -> None:
    modules = _modules_after("import langchain_e2b\nlangchain_e2b.E2BSandboxSession")
    assert "langchain_e2b.session" in modules
    assert "langchain_e2b.deepagents" not in modules


def test_the_agent_imports_nothing_from_its_writable_home(tmp_path: Path) -> None:
    # The agent runs with the sandbox's home as its working directory, which sandbox code can
    # write; a module planted there must never be what the agent imports later on (here
    # difflib, which the agent has not imported yet).
    planted = tmp_path / "planted"
    (tmp_path / "difflib.py").write_text(f"open({str(planted)!r}, 'w').close()\n")
    script = (
        "import sys\n"
        "import langchain_e2b.local.agent\n"
        "assert 'difflib' not in sys.modules\n"
        "import difflib\n"
        "print(difflib.__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not planted.exists(), "a module planted in the agent's working directory ran"
    assert str(tmp_path) not in done.stdout
