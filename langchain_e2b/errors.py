"""Exceptions raised by langchain-e2b.

Errors come in three tiers. What happens inside the sandbox (a non-zero exit code, an exception
in the user's code, a timeout) is not an exception at all: it is a result the model reads. A
mistake the model can fix (a missing file, an ambiguous edit, an invalid package spec) is a
:class:`E2BToolInputError`, which is a LangChain ``ToolException`` so that tools with
``handle_tool_error`` turn it into an error ``ToolMessage``; its message is written for the model.
Misuse by the developer or a broken backend raises one of the others, with a message that says
what to do::

    E2BError
    ├── E2BConfigError(ValueError)            bad options, missing credentials or local runtime
    ├── E2BSessionClosedError(RuntimeError)   the session was used after close()
    ├── E2BSandboxError                       the sandbox could not be created, reached or recreated
    │   ├── E2BSandboxGoneError               it stopped again right after it was recreated
    │   └── E2BBackendUnreachableError(ConnectionError)  the backend's address did not answer
    └── E2BToolInputError(ToolException)      a model-fixable mistake: the tool's error message
        ├── E2BInvalidArgumentError           the sandbox refused an argument (cwd, length, ...)
        └── E2BFileError                      a file operation failed (permission, a directory)
            └── E2BFileNotFoundError(FileNotFoundError)   no such file or directory

``E2BSandboxSession`` translates SDK exceptions into these, in one place (``_sdk.py``), and
raises nothing else from the SDK: code built on the session (the tools) never imports ``e2b``.
Catch :class:`E2BToolInputError` to give the model its message; ``FileNotFoundError`` still
catches a missing file.
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


class E2BSandboxGoneError(E2BSandboxError):
    """The sandbox stopped again right after the session recreated it; the call was not retried."""


class E2BBackendUnreachableError(E2BSandboxError, ConnectionError):
    """The backend's address did not answer (unresolvable host, refused or dropped connection).

    Attributes:
        address: The address that was tried.
    """

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


class E2BToolInputError(E2BError, ToolException):
    """The model asked for something that cannot be done; the message says how to fix it."""


class E2BInvalidArgumentError(E2BToolInputError):
    """The sandbox refused an argument; the message says what to change.

    For example a missing working directory, a command too long to start, or a language the
    sandbox has no kernel for.
    """


class E2BFileError(E2BToolInputError):
    """A file operation failed inside the sandbox (permission denied, not a directory, ...).

    Attributes:
        path: The absolute sandbox path the operation was about.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class E2BFileNotFoundError(E2BFileError, FileNotFoundError):
    """No such file or directory in the sandbox; also a ``FileNotFoundError``.

    ``args[0]`` is the path (as for ``FileNotFoundError(path)``); ``str()`` is the model's message.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path, path=path)

    def __str__(self) -> str:
        return (
            f"No such file or directory in the sandbox: {self.path}. "
            "Use list_files to see what exists."
        )


__all__ = [
    "E2BBackendUnreachableError",
    "E2BConfigError",
    "E2BError",
    "E2BFileError",
    "E2BFileNotFoundError",
    "E2BInvalidArgumentError",
    "E2BSandboxError",
    "E2BSandboxGoneError",
    "E2BSessionClosedError",
    "E2BToolInputError",
]
