"""MkDocs hooks: the generated benchmark report in the nav, and docstrings' reST made plain.

``docs/benchmarks.md`` is written by ``make bench`` (``benchmarks/run_all.py``), not by hand: it
joins the nav, after Security, only when it exists, so the site never shows an empty page.

The docstrings use Google sections with Sphinx roles (``:class:`X```) and ``.. code-block::``
directives, which mkdocstrings renders literally. The role names and the directive lines are
dropped from the rendered pages; the code and the names stay.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

BENCHMARKS = "benchmarks.md"

_DIRECTIVE = re.compile(r"<p>\.\. code-block::\s*\w*</p>\s*")
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?=<code>)")
_TILDE = re.compile(r"(<code>)~(?=[A-Za-z_])")


def on_config(config: Any, **kwargs: Any) -> Any:
    """Put the benchmark report in the nav, after Security, if it has been generated."""
    nav = config["nav"]
    present = (Path(config["docs_dir"]) / BENCHMARKS).is_file()
    listed = any(isinstance(item, dict) and BENCHMARKS in item.values() for item in nav)
    if present and not listed:
        after = next(
            (i + 1 for i, item in enumerate(nav) if isinstance(item, dict) and "Security" in item),
            len(nav),
        )
        nav.insert(after, {"Benchmarks": BENCHMARKS})
    return config


def on_page_content(html: str, **kwargs: Any) -> str:
    """Strip the directive lines and role prefixes from a rendered page."""
    html = _DIRECTIVE.sub("", html)
    html = _ROLE.sub("", html)
    return _TILDE.sub(r"\1", html)
