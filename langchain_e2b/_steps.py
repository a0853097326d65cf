"""Typed steps of a session operation, and the sync and async drivers that run them.

An operation is a generator that yields the steps it needs and receives each step's result (or
has its exception thrown in). :func:`drive` runs the generator with blocking calls, :func:`adrive`
inside an event loop; the operation itself is written once. Steps do the I/O, never the
operation, so both drivers stay honest about where the code may block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger("langchain_e2b.session")

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Call the SDK; the async driver awaits what ``fn`` returns.

    ``fn`` is written once for both SDK flavours: ``Sandbox`` and ``AsyncSandbox`` share names.
    """

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Blocking:
    """Run a blocking function that is not the SDK's (starting the local runtime).

    The async driver runs it in a worker thread so the event loop stays free.
    """

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Wait:
    """Wait until another caller (a thread or an event loop) finishes changing the sandbox."""

    future: concurrent.futures.Future[None]
    owner: int
    """``threading.get_ident()`` of the caller doing the change."""


@dataclass(frozen=True)
class Emit:
    """Deliver events to listeners; the async driver awaits listeners that return awaitables."""

    listeners: Sequence[Callable[[Any], Any]]
    events: Sequence[Any]


@dataclass(frozen=True)
class Twin:
    """A session call bound twice, for code written once over the session's two flavours.

    The blocking driver calls ``run()``, the async one awaits ``arun()``.
    """

    run: Callable[[], Any]
    arun: Callable[[], Awaitable[Any]]


Step = Call | Blocking | Wait | Emit | Twin
Steps = Generator[Step, Any, T]


def _notify(listeners: Sequence[Callable[[Any], Any]], event: Any) -> list[Any]:
    pending = []
    for listener in listeners:
        try:
            result = listener(event)
        except Exception:  # a broken listener must not break the call
            logger.warning("session listener failed on %s", event, exc_info=True)
            continue
        if inspect.isawaitable(result):
            pending.append(result)
    return pending


def _run_sync(step: Step) -> Any:
    if isinstance(step, Twin):
        return step.run()
    if isinstance(step, Call | Blocking):
        return step.fn()
    if isinstance(step, Wait):
        if step.owner == threading.get_ident():
            # Only a task of an event loop running on this very thread can own it, and blocking
            # here would stop that loop for good.
            raise RuntimeError(
                "A blocking session call was made inside an event loop while a task of that loop "
                "is creating the sandbox; use the async methods there (await session.arun_code)."
            )
        return step.future.result()
    for event in step.events:
        for awaitable in _notify(step.listeners, event):
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # an async listener cannot run on the sync path
    return None


async def _run_async(step: Step) -> Any:
    if isinstance(step, Twin):
        return await step.arun()
    if isinstance(step, Call):
        value = step.fn()
        return (await value) if inspect.isawaitable(value) else value
    if isinstance(step, Blocking):
        return await asyncio.to_thread(step.fn)
    if isinstance(step, Wait):
        # Shielded: a cancelled waiter must not cancel the change other callers wait for.
        return await asyncio.shield(asyncio.wrap_future(step.future))
    for event in step.events:
        for awaitable in _notify(step.listeners, event):
            try:
                await awaitable
            except Exception:
                logger.warning("session listener failed on %s", event, exc_info=True)
    return None


class _Done(Exception):
    """The operation returned ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _advance(steps: Steps[Any], value: Any, error: BaseException | None) -> Step:
    """Send the last result (or throw its exception) into the operation; its next step."""
    try:
        return steps.send(value) if error is None else steps.throw(error)
    except StopIteration as done:
        raise _Done(done.value) from None


def drive(steps: Steps[T]) -> T:
    """Run an operation with blocking I/O."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            step = _advance(steps, value, error)
            try:
                value, error = _run_sync(step), None
            except BaseException as exc:  # thrown into the operation, which cleans up
                value, error = None, exc
    except _Done as done:
        return done.value  # type: ignore[no-any-return]


async def adrive(steps: Steps[T]) -> T:
    """Run an operation inside the running event loop."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            step = _advance(steps, value, error)
            try:
                value, error = await _run_async(step), None
            except BaseException as exc:  # cancellation too: the operation releases its claims
                value, error = None, exc
    except _Done as done:
        return done.value  # type: ignore[no-any-return]
