"""How the host reads agent_tools requests out of a cell's stdout, however the chunks fall."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool

from langchain_e2b.code_tools import CodeTools, Exchange
from langchain_e2b.errors import E2BConfigError


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


def _exchange() -> tuple[Exchange, list[str]]:
    seen: list[str] = []
    exchange = CodeTools([echo]).exchange(
        None,  # type: ignore[arg-type]
        timeout=10,
        forward=lambda stream, text: seen.append(text),
        config=None,
        runtime=None,
    )
    return exchange, seen


def test_requests_split_across_chunks_are_found_and_hidden() -> None:
    exchange, _ = _exchange()
    line = f'{exchange.tag}{{"id": "1", "tool": "echo", "args": {{}}}}\n'
    text = f"before{line}after\n"
    for size in (1, 2, 3, 7, len(exchange.tag) - 1, len(text)):
        exchange.pending = ""
        visible, requests = [], []
        for start in range(0, len(text), size):
            shown, found = exchange._scan(text[start : start + size])
            visible.append(shown)
            requests.extend(found)
        assert "".join(visible) + exchange.pending == "before" + "after\n", size
        assert requests == ['{"id": "1", "tool": "echo", "args": {}}'], size


def test_another_secret_and_stray_separators_are_plain_output() -> None:
    exchange, _ = _exchange()
    other = "\x1fagent_tools " + "0" * 32 + ' {"id": "1"}\n'
    for text in (other, "a\x1fb\n", "\x1f"):
        exchange.pending = ""
        shown, found = exchange._scan(text)
        assert found == []
        assert shown + exchange.pending == text
    exchange.pending = ""
    shown, _ = exchange._scan("x\x1f")
    assert shown == "x"  # the separator may start a request: held back until the next chunk
    exchange.close()
    assert exchange.pending == ""


def test_the_record_loses_request_lines_only() -> None:
    exchange, _ = _exchange()
    from langchain_e2b.session import CodeResult

    result = CodeResult(code="", stdout=f"one\n{exchange.tag}{{}}\ntwo\n")
    assert exchange.clean(result).stdout == "one\ntwo\n"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(E2BConfigError, match="Two code_tools are named 'echo'"):
        CodeTools([echo, echo])
    with pytest.raises(E2BConfigError, match="at least 1"):
        CodeTools([echo], max_calls=0)
    with pytest.raises(E2BConfigError, match="LangChain tools"):
        CodeTools(["echo"])  # type: ignore[list-item]
