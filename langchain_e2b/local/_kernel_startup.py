"""Code loaded into every IPython kernel at start: E2B display formatters and env helpers.

The kernel loads this file by path (not as part of the ``langchain_e2b`` package, whose import
would pull the whole SDK into every kernel), under the module name ``_langchain_e2b_kernel``:
its launcher calls :func:`before_kernel` before importing ipykernel, and :func:`install` runs
once the shell exists. Nothing here imports pandas or matplotlib: the formatters only look at
``sys.modules``, so a kernel that never touches them never pays for them, and idle kernels stay
small.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import os
import sys
import threading
import types
from typing import Any

from IPython.core.formatters import BaseFormatter
from traitlets import ObjectName, Unicode

# A DataFrame's ``e2b/data`` copy holds every cell; past this many cells the copy would cost more
# than it is worth (the HTML and text reprs are already truncated by pandas).
MAX_DATA_CELLS = 1_000_000
# Lists and dicts get an ``application/json`` representation, as in E2B's kernels, when small.
MAX_JSON_CHARS = 1_000_000
# ipykernel sends whatever a stream buffered in 0.2 s as one message, however large; past this
# many characters a write is flushed at once, so messages stay small and a fast printer waits
# for its output to be sent instead of piling it up in memory.
STREAM_FLUSH_CHARS = 1 << 20
# ipykernel sends a stream's buffered text 0.2 s after the first write. A cell printing every
# 0.2 s then races that timer and its lines arrive two at a time, 0.4 s apart; a shorter wait
# keeps live output within a tick of the print that made it, at a few more messages a second.
STREAM_FLUSH_INTERVAL = 0.05

# Packages whose ``__init__`` waits until something asks for a name it defines, with the names
# ipykernel takes from them at start and the submodule defining each. jupyter_client's
# ``__init__`` imports its kernel manager, kernel specs and provisioners, and with them
# importlib.metadata, email, zipfile and csv: 35 modules and 1.6 MB in every kernel, which
# only needs its connection-file helpers and message session. In recent releases that session
# reads message dates with dateutil's ISO parser alone (older ones, 8.0 among them, use the
# free-form parser, which then loads at start); the package's ``__init__`` adds its free-form
# parser and decimal (0.8 MB).
_DEFERRED_INITS = {
    "dateutil.parser": {"isoparse": "isoparser"},
    "jupyter_client": {
        "write_connection_file": "connect",
        "find_connection_file": "connect",
        # The default of a trait of ipykernel's application, resolved when it starts.
        "BlockingKernelClient": "blocking",
    },
}
# Optional imports ipykernel's dependencies try at start and a kernel never uses, hidden from
# them while the kernel starts and given back to user code by :func:`install`. debugpy (hidden
# by the launcher) would load pydevd, some 100 modules and 10 MB, for a debugger nobody
# attaches. tornado's logging would use curses (and its libraries, 0.4 MB) or colorama only to
# colour a terminal, and a kernel's stderr is never one. ctypes would be loaded only by
# dateutil's Windows time zones (whose import fails on Linux all the same) and for ipykernel's
# Windows parent poller.
_HIDDEN_AT_START = ("debugpy", "colorama", "curses", "ctypes")

_saved_env: list[dict[str, str | None]] = []


class _Deferred(types.ModuleType):
    """A package imported without its ``__init__``: asking it for a name it lacks runs it.

    So do listing its names and reading its docstring; the package then becomes a plain module
    again, exactly what a plain import makes it.
    """

    def __getattr__(self, attr: str) -> Any:
        _run_init(self)
        return getattr(self, attr)

    def __dir__(self) -> list[str]:
        _run_init(self)
        return dir(self)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        _run_init(self)
        doc: str | None = self.__dict__.get("__doc__")
        return doc


# Re-entrant: one package's ``__init__`` may ask another deferred package for a name.
_init_lock = threading.RLock()


def _run_init(package: types.ModuleType) -> None:
    with _init_lock:
        if type(package) is not _Deferred:
            return
        package.__class__ = types.ModuleType  # type: ignore[assignment]
        loader = package.__spec__.loader if package.__spec__ is not None else None
        if loader is not None:
            loader.exec_module(package)


def defer_package_init(name: str, names: dict[str, str]) -> None:
    """Import package ``name`` without running its ``__init__`` until a name of it is needed.

    The package's submodules import as usual, and each attribute in ``names`` (attribute ->
    submodule) is bound from its submodule at once; anything else asked of the package runs
    its ``__init__`` first (see :class:`_Deferred`).
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)
    package.__class__ = _Deferred
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)
    try:
        for attr, submodule in names.items():
            value = getattr(importlib.import_module(f"{name}.{submodule}"), attr)
            package.__dict__[attr] = value
    except (ImportError, AttributeError):
        # Another release of the package: import it whole, as a plain import would.
        _run_init(package)


def before_kernel() -> None:
    """Prepare the interpreter before ipykernel is imported (the kernel's launcher calls it)."""
    for name in _HIDDEN_AT_START:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    for name, names in _DEFERRED_INITS.items():
        defer_package_init(name, names)


def show_pil_images(image_module: Any) -> None:
    """Make PIL images display as results when saved to a file or shown, as E2B's kernels do.

    A sandbox has no screen or image viewer: ``Image.show()`` would do nothing, and a saved
    image would reach nobody who does not know to download it.
    """
    image_type = getattr(image_module, "Image", None)
    if image_type is None or getattr(image_type, "_e2b_displays", False):
        return
    import IPython.display

    display: Any = IPython.display.display
    save = image_type.save

    def save_and_display(self: Any, fp: Any, *args: Any, **kwargs: Any) -> Any:
        result = save(self, fp, *args, **kwargs)
        # matplotlib writes its PNGs through PIL: its figures already display on their own, so
        # a savefig must not add a second copy of the chart.
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if isinstance(fp, (str, os.PathLike)) and not caller.startswith("matplotlib"):
            display(self)
        return result

    def show(self: Any, *args: Any, **kwargs: Any) -> None:
        display(self)

    image_type.save = save_and_display
    image_type.show = show
    image_type._e2b_displays = True


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs a function on a module once it is imported, without importing it before.

    Importing PIL at start would cost every kernel its memory whether it uses PIL or not.
    """

    def __init__(self, name: str, then: Any) -> None:
        self._name = name
        self._then = then
        self._loader: Any = None

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self._name or self._loader is not None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        # A display nicety must never break the user's import.
        with contextlib.suppress(Exception):
            self._then(module)


def after_import(name: str, then: Any) -> None:
    """Call ``then(module)`` when module ``name`` is imported (now, if it already is)."""
    module = sys.modules.get(name)
    if module is not None:
        then(module)
        return
    sys.meta_path.insert(0, _AfterImport(name, then))


def _plain(value: Any) -> Any:
    """Return ``value`` as something JSON can carry (NaN and NaT become None)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        try:
            text = isoformat()
        except ValueError:  # NaT
            return None
        return text if isinstance(text, str) and text != "NaT" else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def dataframe_data(frame: Any) -> dict[str, list[Any]] | None:
    """Return a DataFrame's columns as ``{column: [values...]}``, or None when too large."""
    rows, cols = frame.shape
    if rows * cols > MAX_DATA_CELLS:
        return None
    columns = frame.to_dict(orient="list")
    return {str(name): [_plain(v) for v in values] for name, values in columns.items()}


def figure_chart(figure: Any) -> dict[str, Any] | None:
    """Return the ``e2b/chart`` description of a matplotlib figure, or None."""
    try:
        from e2b_charts import chart_figure_to_dict
    except ImportError:
        return None
    try:
        chart = chart_figure_to_dict(figure)
    except Exception:
        # The chart is a bonus next to the PNG: a figure it cannot describe still displays.
        return None
    return chart or None


def _is_loaded_instance(obj: Any, module: str, name: str) -> bool:
    """Whether ``obj`` is a ``module.name``, without importing ``module`` if nobody has."""
    kind = getattr(sys.modules.get(module), name, None)
    return isinstance(kind, type) and isinstance(obj, kind)


class DataFormatter(BaseFormatter):
    """``e2b/data``: the columns of a pandas DataFrame."""

    format_type = Unicode("e2b/data")
    print_method = ObjectName("_repr_e2b_data_")
    _return_type = (dict, str)

    def __call__(self, obj: Any) -> Any:
        if _is_loaded_instance(obj, "pandas", "DataFrame"):
            return dataframe_data(obj)
        return super().__call__(obj)


class ChartFormatter(BaseFormatter):
    """``e2b/chart``: the data behind a matplotlib figure (via ``e2b_charts``)."""

    format_type = Unicode("e2b/chart")
    print_method = ObjectName("_repr_e2b_chart_")
    _return_type = (dict, str)

    def __call__(self, obj: Any) -> Any:
        if _is_loaded_instance(obj, "matplotlib.figure", "Figure"):
            return figure_chart(obj)
        return super().__call__(obj)


def _json_value(obj: Any) -> Any:
    try:
        text = json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return obj if len(text) <= MAX_JSON_CHARS else None


def bound_stream(stream: Any) -> None:
    """Make an ipykernel output stream flush every :data:`STREAM_FLUSH_CHARS` characters."""
    write = stream.write
    owner = os.getpid()
    pending = 0

    def bounded_write(text: Any) -> Any:
        nonlocal pending
        if not isinstance(text, str) or os.getpid() != owner:
            return write(text)
        for start in range(0, len(text), STREAM_FLUSH_CHARS):
            piece = text[start : start + STREAM_FLUSH_CHARS]
            write(piece)
            pending += len(piece)
            if pending >= STREAM_FLUSH_CHARS:
                pending = 0
                stream.flush()
        return len(text)

    stream.write = bounded_write


def cell_syntax_error(
    shell: Any, etype: Any, evalue: Any, stb: Any
) -> tuple[str, list[str]] | None:
    """Return the value and traceback to show for a syntax error in a cell's own code, or None.

    Python words a ``SyntaxError`` as ``msg (file, line N)``, and a cell's file is an internal
    name (``2215662134.py``) that means nothing to whoever wrote the cell. The traceback already
    shows the cell and the offending line; the value says the line number in the cell instead.
    """
    if not (isinstance(etype, type) and issubclass(etype, SyntaxError)):
        return None
    if not isinstance(evalue, SyntaxError) or not isinstance(stb, list):
        return None
    filename_map = getattr(getattr(shell, "compile", None), "_filename_map", None)
    if not isinstance(filename_map, dict) or evalue.filename not in filename_map:
        return None
    value = str(evalue.msg)
    if evalue.lineno:
        value += f" (line {evalue.lineno})"
    lines = [str(line) for line in stb]
    headline = f"{etype.__name__}: {evalue.msg}"
    # IPython gives one string per frame, several lines each: replace the last line that states
    # the error, so the traceback ends with the same words as the value.
    for index in range(len(lines) - 1, -1, -1):
        parts = lines[index].split("\n")
        matches = [i for i, part in enumerate(parts) if part == headline]
        if matches:
            parts[matches[-1]] = f"{etype.__name__}: {value}"
            lines[index] = "\n".join(parts)
            break
    return value, lines


class _Shown(str):
    """An exception value as it should be shown (ipykernel sends ``str(evalue)``)."""


def show_cell_syntax_errors(shell: Any) -> None:
    """Make a cell's syntax error name the line in the cell, not an internal file name."""
    show = getattr(shell, "_showtraceback", None)
    if show is None:
        return

    def showtraceback(etype: Any, evalue: Any, stb: Any) -> Any:
        shown = cell_syntax_error(shell, etype, evalue, stb)
        if shown is not None:
            return show(etype, _Shown(shown[0]), shown[1])
        return show(etype, evalue, stb)

    shell._showtraceback = showtraceback


def install(shell: Any) -> None:
    """Register the E2B formatters on an IPython shell."""
    for name in _HIDDEN_AT_START:
        if name in sys.modules and sys.modules[name] is None:
            # Hidden from ipykernel's start only; user code may still import it.
            del sys.modules[name]
    for stream in (sys.stdout, sys.stderr):
        if type(stream).__name__ == "OutStream":
            bound_stream(stream)
            setattr(stream, "flush_interval", STREAM_FLUSH_INTERVAL)  # noqa: B010
    show_cell_syntax_errors(shell)
    after_import("PIL.Image", show_pil_images)
    history = getattr(shell, "history_manager", None)
    if history is not None and isinstance(getattr(history, "outputs", None), dict):
        # IPython 9 keeps every cell's printed text and display bundles (PNGs included) for
        # %notebook; in a long-lived sandbox that is an unbounded leak, so drop them per cell.
        shell.events.register("post_run_cell", lambda _result: history.outputs.clear())
    formatters = shell.display_formatter.formatters
    formatters["e2b/data"] = DataFormatter(parent=shell.display_formatter)
    formatters["e2b/chart"] = ChartFormatter(parent=shell.display_formatter)
    json_formatter = formatters.get("application/json")
    if json_formatter is not None:
        json_formatter.for_type(dict, _json_value)
        json_formatter.for_type(list, _json_value)


def push_env(env: dict[str, str]) -> None:
    """Set environment variables for one execution, remembering the values they replace."""
    _saved_env.append({key: os.environ.get(key) for key in env})
    os.environ.update(env)


def pop_env() -> None:
    """Undo the latest :func:`push_env`."""
    if not _saved_env:
        return
    for key, value in _saved_env.pop().items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
