"""MkDocs hook: show the package's reStructuredText bits in docstrings as plain Markdown would.

The docstrings use Google sections with Sphinx roles (``:class:`X```) and ``.. code-block::``
directives, which mkdocstrings renders literally. The role names and the directive lines are
dropped from the rendered pages; the code and the names stay.
"""

from __future__ import annotations

import re
from typing import Any

_DIRECTIVE = re.compile(r"<p>\.\. code-block::\s*\w*</p>\s*")
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?=<code>)")
_TILDE = re.compile(r"(<code>)~(?=[A-Za-z_])")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Strip the directive lines and role prefixes from a rendered page."""
    html = _DIRECTIVE.sub("", html)
    html = _ROLE.sub("", html)
    return _TILDE.sub(r"\1", html)
