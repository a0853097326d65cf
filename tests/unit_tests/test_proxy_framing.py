"""The gateway's HTTP/1.1 client side: how it reads an agent's responses, malformed ones too."""

from __future__ import annotations

import asyncio

import pytest

from langchain_e2b.local import proxy


def _read(response: bytes, method: str = "GET") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    async def main() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(response)
        reader.feed_eof()
        head = await proxy._read_head(reader, method)
        body = b"".join([chunk async for chunk in proxy._read_body(reader, head)])
        return head.status, head.headers, body

    return asyncio.run(main())


def test_a_content_length_body_is_read_to_its_length() -> None:
    status, headers, body = _read(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA")
    assert (status, body) == (200, b"hello")
    assert (b"content-length", b"5") in headers


def test_a_chunked_body_is_unframed_and_no_length_is_passed_on() -> None:
    status, headers, body = _read(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    )
    assert (status, body) == (200, b"abcde")
    assert all(name != b"content-length" for name, _ in headers)


def test_a_body_without_length_or_chunks_ends_with_the_connection() -> None:
    assert _read(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")[2] == b"until the end"


def test_head_204_and_304_have_no_body() -> None:
    assert _read(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n", "HEAD")[2] == b""
    for status in (204, 304):
        _, headers, body = _read(b"HTTP/1.1 %d X\r\ncontent-length: 3\r\n\r\nabc" % status)
        assert body == b""
        assert all(name != b"content-length" for name, _ in headers)


@pytest.mark.parametrize("value", [b"-1", b"+5", b"1_0", b"0x10", b"", b"5, 5"])
def test_a_malformed_content_length_ends_the_response(value: bytes) -> None:
    # A negative length would make the reader read to the end of the connection, holding a
    # whole body of any size: anything but digits is refused.
    with pytest.raises(proxy._AgentGone):
        _read(b"HTTP/1.1 200 OK\r\ncontent-length: " + value + b"\r\n\r\nabc")


@pytest.mark.parametrize("size", [b"-1", b"+3", b"0x3", b"", b"1_0", b"g"])
def test_a_malformed_chunk_size_ends_the_response(size: bytes) -> None:
    with pytest.raises(proxy._AgentGone):
        _read(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + size + b"\r\nabc\r\n")


def test_a_response_cut_short_ends_the_response() -> None:
    with pytest.raises(proxy._AgentGone):
        _read(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
