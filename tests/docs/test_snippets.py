"""Every Python code block of the documentation runs, in page order, against the local runtime.

Blocks of one page share a namespace, as a reader would run them one after another. A block that
needs what the test machine does not have (a real chat model, the E2B cloud) is preceded in the
page by ``<!-- snippet: skip (reason) -->``; it is reported as skipped with that reason, so the
count of untested blocks shows in every test run. ``<!-- snippet: requires MODULE -->`` skips a
block only where an optional extra is not installed (``make test-lowest`` has no Deep Agents).
Everything else runs with the embedded local runtime (E2B variables are cleared) and, where a
model is needed, the scripted chat model.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")
_SKIP = re.compile(r"^\s*<!--\s*snippet:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
_REQUIRES = re.compile(r"^\s*<!--\s*snippet:\s*requires\s+(?P<module>[\w.]+)\s*-->\s*$")
_ANY_MARKER = re.compile(r"<!--\s*snippet:")
# Variables that would send the snippets somewhere other than the local runtime.
_BACKEND_VARS = ("E2B_API_KEY", "E2B_API_URL", "E2B_SANDBOX_URL", "E2B_DOMAIN")


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: str
    line: int  # 1-based line of the block's first code line
    code: str
    skip: str | None
    requires: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_page(path: Path) -> list[Block]:
    """The Python blocks of a Markdown page, with the skip reason written before each."""
    page = path.relative_to(DOCS).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{index + 1}: a code block is never closed")
        if opening["lang"] in ("python", "py"):
            previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
            marker = _SKIP.match(previous)
            requires = _REQUIRES.match(previous)
            if marker is None and requires is None and _ANY_MARKER.search(previous):
                raise AssertionError(
                    f"{page}:{index}: unreadable snippet marker {previous.strip()!r}; "
                    "write <!-- snippet: skip (why) --> or <!-- snippet: requires MODULE -->"
                )
            code = textwrap.dedent("\n".join(lines[start:end]))
            blocks.append(
                Block(
                    page,
                    start + 1,
                    code,
                    marker["reason"].strip() if marker else None,
                    requires["module"] if requires else None,
                )
            )
        index = end + 1
    return blocks


BLOCKS = [block for path in sorted(DOCS.rglob("*.md")) for block in parse_page(path)]
_NAMESPACES: dict[str, dict[str, Any]] = {}
_FAILED: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def local_runtime_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Clear E2B variables (the embedded local runtime is used) and work in a scratch directory."""
    with pytest.MonkeyPatch.context() as patch:
        for name in _BACKEND_VARS:
            patch.delenv(name, raising=False)
        patch.chdir(tmp_path_factory.mktemp("docs-snippets"))
        yield


def _importable(module: str) -> bool:
    """Whether ``module`` is installed (a real package, not a same-named test directory)."""
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        return False
    return spec is not None and spec.origin is not None


@pytest.mark.timeout(180)
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_snippet_runs(block: Block) -> None:
    if block.skip:
        pytest.skip(f"marked in the page: {block.skip}")
    if block.requires and not _importable(block.requires):
        pytest.skip(f"{block.requires} is not installed (an optional extra)")
    if block.page in _FAILED:
        pytest.fail(f"an earlier block of {block.page} failed ({_FAILED[block.page]})")
    namespace = _NAMESPACES.setdefault(block.page, {"__name__": "__docs__"})
    # Padding keeps the page's line numbers in tracebacks.
    source = "\n" * (block.line - 1) + block.code
    try:
        exec(compile(source, str(DOCS / block.page), "exec"), namespace)
    except BaseException:
        _FAILED[block.page] = block.id
        raise


def test_pages_have_snippets_and_skips_are_rare() -> None:
    """The parser found the blocks, and most of them run (a skipped block is untested text)."""
    pages = {block.page for block in BLOCKS}
    skipped = [block for block in BLOCKS if block.skip]
    assert "quickstart.md" in pages, "the quickstart's code is not found"
    assert len(BLOCKS) >= 20, f"only {len(BLOCKS)} Python blocks found in {DOCS}"
    # Every skip names its reason (the marker's syntax requires one) and stays the exception.
    assert len(skipped) * 4 <= len(BLOCKS), [block.id for block in skipped]
    print(f"{len(BLOCKS)} Python blocks in {len(pages)} pages; {len(skipped)} skipped:")
    for block in skipped:
        print(f"  {block.id}: {block.skip}")
