"""The agent's own tools, callable from the code ``run_code`` runs.

``E2BCodeInterpreterTool(code_tools=[...])`` puts a module ``agent_tools`` in the kernel: one
function per LangChain tool. Calling one asks the host to run the real tool, over the unmodified
SDKs, so it works alike on the E2B cloud and on the local runtime, and the sandbox never reaches
the host's network:

1. Before each cell, a short setup cell (run straight on the SDK: not recorded, the execution
   counter left as it was) defines the module if needed and gives it this execution's secret.
2. A call writes one request line, tagged with the secret, to the cell's stdout. The host's output
   handler recognises it, takes it out of the output (neither the live events nor the record keep
   it), checks it (a listed tool, within the caps, before the run's deadline) and runs the tool as
   a child run of the ``run_code`` call.
3. The host writes the answer into a file of this execution's directory in the sandbox, through
   the files API; the stub polls for that file and returns the value or raises ``ToolError``.

A line that only looks like a request (printed by a program, replayed from an old log) is plain
output: it lacks the secret. On the async path each request runs as a task, so several calls can
be in flight (``asyncio.gather`` over ``agent_tools.aio``); every task still running when the cell
ends or is cancelled is cancelled with it.

What this opens: anything a code tool returns becomes readable by the code in the sandbox, and
that code chooses the arguments (within the tools' schemas and the caps), see docs/security.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import keyword
import logging
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_e2b.errors import E2BConfigError
from langchain_e2b.session import CodeResult, E2BSandboxSession, OutputCallback

logger = logging.getLogger("langchain_e2b.tools")

BRIDGE_DIR = "/tmp/langchain_e2b/agent_tools"
"""Where each execution's answers are written (one directory per execution, named by its secret)."""
DEFAULT_MAX_CALLS = 1000
DEFAULT_MAX_RESULT_BYTES = 10_000_000
SETUP_TIMEOUT = 60.0
_TAG = "\x1fagent_tools "
_END = "\n\x1eend"


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident) or ident in ("aio", "help"):
        ident = f"{ident}_"
    while ident in taken:
        ident += "_"
    return ident


def _spec(tool: BaseTool) -> dict[str, Any]:
    # The model-facing schema: injected arguments (a ToolRuntime) are left out.
    json_schema: dict[str, Any] = convert_to_openai_tool(tool)["function"].get("parameters", {})
    properties: dict[str, Any] = dict(json_schema.get("properties") or {})
    required = [name for name in json_schema.get("required") or [] if name in properties]
    order = required + [name for name in properties if name not in required]
    lines = [tool.description.strip() or tool.name, "", "Arguments:"]
    for name in order:
        prop = properties[name]
        kind = prop.get("type") or "any"
        note = prop.get("description") or ""
        mark = "" if name in required else " (optional)"
        lines.append(f"    {name} ({kind}){mark}: {note}".rstrip(": "))
    if not order:
        lines.append("    (none)")
    return {"tool": tool.name, "params": order, "required": required, "doc": "\n".join(lines)}


_STUB = r'''
import asyncio as _asyncio
import inspect as _inspect
import itertools as _itertools
import json as _json
import os as _os
import shutil as _shutil
import sys as _sys
import time as _time
import types as _types

_SPECS = _json.loads(__SPECS__)
_TAG = __TAG__
_END = __END__
_state = {"secret": None, "dir": None}
_ids = _itertools.count(1)


class ToolError(Exception):
    """A tool of the agent failed; the message is the tool's own."""


def _begin(secret, directory):
    old = _state["dir"]
    if old and old != directory:
        _shutil.rmtree(old, ignore_errors=True)
    _os.makedirs(directory, mode=0o700, exist_ok=True)
    _state["secret"], _state["dir"] = secret, directory


def _arguments(name, args, kwargs):
    __tracebackhide__ = True
    spec = _SPECS[name]
    params = spec["params"]
    if len(args) > len(params):
        raise TypeError("%s() takes %d argument(s) (%s), %d given"
                        % (name, len(params), ", ".join(params), len(args)))
    given = dict(zip(params, args))
    for key, value in kwargs.items():
        if key in given:
            raise TypeError("%s() got multiple values for argument %r" % (name, key))
        given[key] = value
    unknown = [k for k in given if k not in params]
    if unknown:
        raise TypeError("%s() got unexpected argument(s) %s; it takes %s. See help(agent_tools.%s)."
                        % (name, ", ".join(unknown), ", ".join(params) or "none", name))
    missing = [k for k in spec["required"] if k not in given]
    if missing:
        raise TypeError("%s() is missing required argument(s) %s. See help(agent_tools.%s)."
                        % (name, ", ".join(missing), name))
    return given


def _send(name, args, kwargs):
    __tracebackhide__ = True
    secret = _state["secret"]
    if secret is None:
        raise RuntimeError("agent_tools works only in code run by the run_code tool.")
    given = _arguments(name, args, kwargs)
    call_id = str(next(_ids))
    try:
        body = _json.dumps({"id": call_id, "tool": _SPECS[name]["tool"], "args": given})
    except (TypeError, ValueError) as exc:
        raise TypeError("%s(): arguments must be JSON values (str, int, float, bool, None, list, "
                        "dict): %s" % (name, exc)) from None
    _sys.stdout.write(_TAG + secret + " " + body + "\n")
    _sys.stdout.flush()
    return _os.path.join(_state["dir"], call_id)


def _answer(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.endswith(_END):
        return None  # still being written
    _os.unlink(path)
    return _json.loads(data[: -len(_END)])


def _pause(started):
    # Fast tools answer within tens of milliseconds: look often then, seldom for slow ones.
    waited = _time.monotonic() - started
    return 0.0005 if waited < 0.1 else 0.005 if waited < 2 else 0.02


def _call(name, args, kwargs):
    __tracebackhide__ = True
    path, started = _send(name, args, kwargs), _time.monotonic()
    while (reply := _answer(path)) is None:
        _time.sleep(_pause(started))
    return reply


async def _acall(name, args, kwargs):
    __tracebackhide__ = True
    path, started = _send(name, args, kwargs), _time.monotonic()
    while (reply := _answer(path)) is None:
        await _asyncio.sleep(_pause(started))
    return reply


def _signature(spec):
    P = _inspect.Parameter
    return _inspect.Signature([
        P(p, P.POSITIONAL_OR_KEYWORD, **({} if p in spec["required"] else {"default": None}))
        for p in spec["params"]
    ])


aio = _types.ModuleType(
    "agent_tools.aio", "The same tools as coroutines: await agent_tools.aio.NAME(...)."
)


def _define(name, spec):
    def tool(*args, **kwargs):
        reply = _call(name, args, kwargs)
        if not reply.get("ok"):
            raise ToolError(reply.get("error") or "the tool failed") from None
        return reply.get("value")

    async def atool(*args, **kwargs):
        reply = await _acall(name, args, kwargs)
        if not reply.get("ok"):
            raise ToolError(reply.get("error") or "the tool failed") from None
        return reply.get("value")

    for fn, module in ((tool, "agent_tools"), (atool, "agent_tools.aio")):
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = spec["doc"]
        fn.__signature__ = _signature(spec)
        fn.__module__ = module
    globals()[name] = tool
    setattr(aio, name, atool)


for _name, _spec in _SPECS.items():
    _define(_name, _spec)
_sys.modules["agent_tools.aio"] = aio
__all__ = sorted(_SPECS) + ["ToolError", "aio"]


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(
        "agent_tools has no tool named %r; the tools are: %s. See help(agent_tools)."
        % (name, ", ".join(sorted(_SPECS)) or "none")
    )
'''

_SETUP = """
def _lce2b_setup():
    import sys, types
    global agent_tools
    module = sys.modules.get("agent_tools")
    if module is None or getattr(module, "_DIGEST", None) != {digest!r}:
        module = types.ModuleType("agent_tools", {doc!r})
        module._DIGEST = {digest!r}
        sys.modules["agent_tools"] = module
        import linecache
        source = {source!r}
        # Registered so a traceback through agent_tools shows its lines.
        lines = source.splitlines(True)
        linecache.cache["<agent_tools>"] = (len(source), None, lines, "<agent_tools>")
        exec(compile(source, "<agent_tools>", "exec"), module.__dict__)
    module._begin({secret!r}, {directory!r})
    agent_tools = module
    try:
        get_ipython().execution_count -= 1  # this cell is plumbing: keep the model's numbering
    except Exception:
        pass
_lce2b_setup()
del _lce2b_setup
"""


_LOCKS: weakref.WeakKeyDictionary[E2BSandboxSession, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock_for(session: E2BSandboxSession) -> threading.Lock:
    """The lock held around a session's setup cell and code cell.

    Two runs interleaved would each find the other's secret in the kernel (both setups run
    first, then both cells), and both would wait for answers that never come.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(session)
        if lock is None:
            lock = _LOCKS[session] = threading.Lock()
        return lock


class CodeTools:
    """The tools callable from sandbox code, and the caps on what one execution may do with them.

    Args:
        tools: LangChain tools (any ``BaseTool``, ``@tool`` functions included).
        max_calls: Most calls one ``run_code`` execution may make.
        max_result_bytes: Most bytes of results one execution may receive, all calls together.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool],
        *,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        if max_calls < 1 or max_result_bytes < 1:
            raise E2BConfigError("max_calls and max_result_bytes must be at least 1")
        self.by_name: dict[str, BaseTool] = {}
        specs: dict[str, dict[str, Any]] = {}
        for tool in tools:
            if not isinstance(tool, BaseTool):
                raise E2BConfigError(
                    f"code_tools takes LangChain tools (BaseTool or @tool functions), got {tool!r}"
                )
            if tool.name in self.by_name:
                raise E2BConfigError(f"Two code_tools are named {tool.name!r}; rename one.")
            self.by_name[tool.name] = tool
            specs[_identifier(tool.name, set(specs))] = _spec(tool)
        self.specs = specs
        self.max_calls = max_calls
        self.max_result_bytes = max_result_bytes
        listing = "\n".join(
            f"  {ident}({', '.join(s['params'])}): {s['doc'].splitlines()[0]}"
            for ident, s in specs.items()
        )
        self.doc = (
            "The agent's tools, callable from this code.\n\n"
            f"{listing}\n\n"
            "Call them with keyword arguments (JSON values); each returns the tool's result: "
            "its text, or the parsed value when that text is JSON (an object, a list, a number, "
            "true, false or null). A failing tool raises agent_tools.ToolError with the "
            "tool's message. From async code, "
            "`await agent_tools.aio.NAME(...)` (several at once with asyncio.gather)."
        )
        source = (
            _STUB.replace("__SPECS__", repr(json.dumps(specs)))
            .replace("__TAG__", repr(_TAG))
            .replace("__END__", repr(_END))
        )
        self.source = source
        self.digest = hashlib.sha256((source + self.doc).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """What the ``run_code`` description adds: the tools exist, and how to call them."""
        names = ", ".join(f"{ident}({', '.join(s['params'])})" for ident, s in self.specs.items())
        return (
            " In Python code, the module `agent_tools` (already imported) has a function for each "
            f"of these tools: {names}. Call them in loops or in bulk and print only what you "
            "need, instead of one tool call per item; help(agent_tools) describes them; "
            "`await agent_tools.aio.NAME(...)` runs several at once with asyncio.gather. A "
            "failing tool raises agent_tools.ToolError."
        )

    def exchange(
        self,
        session: E2BSandboxSession,
        *,
        timeout: float | None,
        forward: OutputCallback,
        config: RunnableConfig | None,
        runtime: Any,
    ) -> Exchange:
        """The bridge for one execution."""
        limit = timeout if timeout is not None else session.timeout
        return Exchange(self, session, forward, config, runtime, time.monotonic() + limit)

    def run(
        self, exchange: Exchange, code: str, *, language: str | None, timeout: float | None
    ) -> CodeResult:
        """``session.run_code`` with the tools callable from ``code`` (blocking)."""
        session = exchange.session
        lock = _lock_for(session)
        locked = lock.acquire(timeout=max(exchange.deadline - time.monotonic(), 0.001))
        try:
            exchange.sandbox = session.ensure_sandbox()
            try:
                exchange.sandbox.run_code(exchange.setup_code(), timeout=SETUP_TIMEOUT)
            except Exception:  # the run below meets the same failure and reports it
                logger.warning("could not set up agent_tools in the sandbox", exc_info=True)
            try:
                result = session.run_code(
                    code, language=language, timeout=timeout, on_output=exchange.on_output
                )
            finally:
                exchange.close()
        finally:
            if locked:
                lock.release()
        return exchange.clean(result)

    async def arun(
        self, exchange: Exchange, code: str, *, language: str | None, timeout: float | None
    ) -> CodeResult:
        """Async :meth:`run`: tools run with ``ainvoke``, several at once."""
        session = exchange.session
        lock = _lock_for(session)
        # Polled, not awaited in a thread: a cancelled waiter must never end up holding it.
        locked = lock.acquire(blocking=False)
        while not locked and time.monotonic() < exchange.deadline:
            await asyncio.sleep(0.005)
            locked = lock.acquire(blocking=False)
        try:
            exchange.sandbox = await session.aensure_sandbox()
            try:
                await exchange.sandbox.run_code(exchange.setup_code(), timeout=SETUP_TIMEOUT)
            except Exception:  # the run below meets the same failure and reports it
                logger.warning("could not set up agent_tools in the sandbox", exc_info=True)
            try:
                result = await session.arun_code(
                    code, language=language, timeout=timeout, on_output=exchange.aon_output
                )
            finally:
                await exchange.aclose()
        finally:
            if locked:
                lock.release()
        return exchange.clean(result)


class Exchange:
    """One execution's side of the bridge: finds requests in stdout, runs them, answers."""

    def __init__(
        self,
        tools: CodeTools,
        session: E2BSandboxSession,
        forward: OutputCallback,
        config: RunnableConfig | None,
        runtime: Any,
        deadline: float,
    ) -> None:
        self.tools = tools
        self.session = session
        self.forward = forward
        self.config = config
        self.runtime = runtime
        self.deadline = deadline
        self.secret = secrets.token_hex(16)
        self.directory = f"{BRIDGE_DIR}/{self.secret}"
        self.tag = f"{_TAG}{self.secret} "
        self.sandbox: Any = None
        self.pending = ""
        self.calls = 0
        self.result_bytes = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def setup_code(self) -> str:
        """The setup cell: define ``agent_tools`` if needed and give it this execution's secret."""
        return _SETUP.format(
            digest=self.tools.digest,
            doc=self.tools.doc,
            source=self.tools.source,
            secret=self.secret,
            directory=self.directory,
        )

    # --- reading requests out of the output ----------------------------------------------

    def _scan(self, text: str) -> tuple[str, list[str]]:
        """The output without request lines, and the requests' bodies (a split line waits)."""
        buffer = self.pending + text
        self.pending = ""
        visible: list[str] = []
        requests: list[str] = []
        while buffer:
            start = buffer.find(self.tag)
            if start < 0:
                # Keep a tail that may be the start of a request split across chunks.
                cut = buffer.rfind(_TAG[0])
                if cut >= 0 and self.tag.startswith(buffer[cut:]):
                    self.pending = buffer[cut:]
                    buffer = buffer[:cut]
                visible.append(buffer)
                break
            visible.append(buffer[:start])
            end = buffer.find("\n", start)
            if end < 0:
                self.pending = buffer[start:]
                break
            requests.append(buffer[start + len(self.tag) : end])
            buffer = buffer[end + 1 :]
        return "".join(visible), requests

    def clean(self, result: CodeResult) -> CodeResult:
        """Drop request lines from the record (the recorded history holds the same object)."""
        if _TAG in result.stdout:
            kept = [line for line in result.stdout.splitlines(True) if _TAG not in line]
            result.stdout = "".join(kept)
        return result

    # --- deciding and answering ----------------------------------------------------------

    def _decide(self, body: str) -> tuple[str, BaseTool | None, dict[str, Any] | str]:
        """``(call_id, tool, arguments)``, or ``(call_id, None, error)`` for a refused call."""
        try:
            request = json.loads(body)
            call_id = str(request["id"])
            name = str(request["tool"])
            args = request["args"]
            if not re.fullmatch(r"\d{1,12}", call_id) or not isinstance(args, dict):
                raise ValueError(body[:200])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed agent_tools request: %.200s", body)
            return "", None, ""
        tool = self.tools.by_name.get(name)
        self.calls += 1
        if tool is None:
            return (
                call_id,
                None,
                (
                    f"There is no tool named {name!r}; the tools are: "
                    f"{', '.join(sorted(self.tools.by_name)) or 'none'}."
                ),
            )
        if self.calls > self.tools.max_calls:
            return (
                call_id,
                None,
                (
                    f"This run_code call reached its limit of {self.tools.max_calls} agent_tools "
                    "calls; split the work over several run_code calls."
                ),
            )
        if time.monotonic() >= self.deadline:
            return call_id, None, "The run_code timeout was reached; no more tool calls."
        return call_id, tool, args

    def _tool_call(self, tool: BaseTool, args: dict[str, Any], call_id: str) -> dict[str, Any]:
        tool_call_id = f"agent_tools-{self.secret[:8]}-{call_id}"
        arguments = dict(args)
        fields = getattr(tool.get_input_schema(), "model_fields", {})
        if "runtime" in fields and self.runtime is not None:
            runtime = self.runtime
            if dataclasses.is_dataclass(runtime) and not isinstance(runtime, type):
                runtime = dataclasses.replace(runtime, tool_call_id=tool_call_id)
            arguments["runtime"] = runtime
        return {"type": "tool_call", "id": tool_call_id, "name": tool.name, "args": arguments}

    def _reply(self, tool: BaseTool, output: Any) -> dict[str, Any]:
        if isinstance(output, ToolMessage):
            content = output.content
            text = (
                content
                if isinstance(content, str)
                else "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
            )
            if output.status == "error":
                return {"ok": False, "error": f"{tool.name}: {text}"}
            output = text
        if isinstance(output, str):
            # Text that is a JSON document comes back parsed (a tool's dict, list or number);
            # any other text as it is.
            try:
                value = json.loads(output)
            except ValueError:
                return {"ok": True, "value": output}
            return {"ok": True, "value": output if isinstance(value, str) else value}
        try:
            json.dumps(output)
        except (TypeError, ValueError):
            output = str(output)
        return {"ok": True, "value": output}

    def _failed(self, tool: BaseTool, exc: BaseException) -> dict[str, Any]:
        return {"ok": False, "error": f"{tool.name} failed: {type(exc).__name__}: {exc}"}

    def _payload(self, reply: dict[str, Any]) -> str:
        text = json.dumps(reply)
        size = len(text.encode())
        if reply.get("ok") and self.result_bytes + size > self.tools.max_result_bytes:
            text = json.dumps(
                {
                    "ok": False,
                    "error": (
                        f"The results of agent_tools calls in this run_code call passed the "
                        f"limit of {self.tools.max_result_bytes} bytes; ask the tools for less "
                        "or split the work over several run_code calls."
                    ),
                }
            )
        else:
            self.result_bytes += size
        return text + _END

    def _answer(self, call_id: str, reply: dict[str, Any]) -> None:
        try:
            self.sandbox.files.write(f"{self.directory}/{call_id}", self._payload(reply))
        except Exception:  # the cell then waits until its timeout, which the model is told
            logger.warning("could not answer an agent_tools call", exc_info=True)

    async def _aanswer(self, call_id: str, reply: dict[str, Any]) -> None:
        try:
            await self.sandbox.files.write(f"{self.directory}/{call_id}", self._payload(reply))
        except Exception:  # the cell then waits until its timeout, which the model is told
            logger.warning("could not answer an agent_tools call", exc_info=True)

    def _handle(self, body: str) -> None:
        call_id, tool, args = self._decide(body)
        if not call_id:
            return
        if tool is None or isinstance(args, str):
            self._answer(call_id, {"ok": False, "error": args})
            return
        try:
            output = tool.invoke(self._tool_call(tool, args, call_id), config=self.config)
            reply = self._reply(tool, output)
        except Exception as exc:
            reply = self._failed(tool, exc)
        self._answer(call_id, reply)

    async def _ahandle(self, body: str) -> None:
        call_id, tool, args = self._decide(body)
        if not call_id:
            return
        if tool is None or isinstance(args, str):
            await self._aanswer(call_id, {"ok": False, "error": args})
            return
        remaining = max(self.deadline - time.monotonic(), 0.001)
        try:
            output = await asyncio.wait_for(
                tool.ainvoke(self._tool_call(tool, args, call_id), config=self.config),
                remaining,
            )
            reply = self._reply(tool, output)
        except asyncio.TimeoutError:
            reply = {"ok": False, "error": f"{tool.name} did not finish before the timeout."}
        except Exception as exc:
            reply = self._failed(tool, exc)
        await self._aanswer(call_id, reply)

    # --- the output handlers -------------------------------------------------------------

    def on_output(self, stream: str, text: str) -> None:
        """Sync ``on_output``: requests run one after the other, in this thread."""
        if stream == "stdout":
            text, requests = self._scan(text)
            for body in requests:
                self._handle(body)
        if text:
            self.forward(stream, text)

    async def aon_output(self, stream: str, text: str) -> None:
        """Async ``on_output``: each request runs as a task, so calls overlap."""
        if stream == "stdout":
            text, requests = self._scan(text)
            for body in requests:
                task = asyncio.get_running_loop().create_task(self._ahandle(body))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        if text:
            result = self.forward(stream, text)
            if asyncio.iscoroutine(result):
                await result

    def close(self) -> None:
        """The cell ended: pass on output held back as a possible request start."""
        text, self.pending = self.pending, ""
        if text:
            self.forward("stdout", text)

    async def aclose(self) -> None:
        """The cell ended or was cancelled: cancel the calls still running, then :meth:`close`."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        text, self.pending = self.pending, ""
        if text:
            result = self.forward("stdout", text)
            if asyncio.iscoroutine(result):
                await result


def as_code_tools(
    value: CodeTools | Sequence[BaseTool | Callable[..., Any]] | None,
) -> CodeTools | None:
    """``code_tools`` as given to a tool, toolkit or middleware: a list of tools or ready caps."""
    if value is None or isinstance(value, CodeTools):
        return value
    if not value:
        return None
    from langchain_core.tools import tool as as_tool

    return CodeTools([t if isinstance(t, BaseTool) else as_tool(t) for t in value])


__all__ = ["BRIDGE_DIR", "CodeTools", "Exchange", "as_code_tools"]
