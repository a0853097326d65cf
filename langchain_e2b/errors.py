"""Exceptions raised by langchain-e2b.

Errors come in three tiers. What happens inside the sandbox (a non-zero exit code, an exception
in the user's code, a timeout) is not an exception at all: it is a result the model reads. A
mistake the model can fix (a missing file, an ambiguous edit, an invalid package spec) is a
:class:`E2BToolInputError`, which is a LangChain ``ToolException`` so that tools with
``handle_tool_error`` turn it into an error ``ToolMessage``. Misuse by the developer or a broken
backend raises one of the others, with a message that says what to do::

    E2BError
    ├── E2BConfigError(ValueError)        bad options, missing credentials or local runtime
    ├── E2BSessionClosedError(RuntimeError)   the session was used after close()
    ├── E2BSandboxError                   the sandbox could not be created, reached or recreated
    └── E2BToolInputError(ToolException)  a model-fixable mistake; becomes the tool's error message
"""

from __future__ import annotations

from langchain_core.tools import ToolException


class E2BError(Exception):
    """Root of every exception raised by langchain-e2b."""


class E2BConfigError(E2BError, ValueError):
    """The session or tool was configured in a way that cannot work."""


class E2BSessionClosedError(E2BError, RuntimeError):
    """The session was used after ``close()``; create a new session instead."""


class E2BSandboxError(E2BError):
    """The sandbox backend failed: it could not be created, reached or recreated."""


class E2BToolInputError(E2BError, ToolException):
    """The model asked for something that cannot be done; the message says how to fix it."""


__all__ = [
    "E2BConfigError",
    "E2BError",
    "E2BSandboxError",
    "E2BSessionClosedError",
    "E2BToolInputError",
]
