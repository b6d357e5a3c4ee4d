"""Finding a batch's events without recursion: the fallback for a body nested so deeply that the decoder's recursion
guard trips even while stepping over one event. Each event's bytes are then decoded (and refused) on their own, so one
absurdly deep event never costs its neighbours. Plain loops with explicit counters: depth costs no stack."""

from __future__ import annotations

import re
import struct

import msgspec

# a JSON string (escapes included), a run of openers, a run of closers, or a separator
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]+|[\]}]+|[:,]', re.DOTALL)
_WHITESPACE = b" \t\r\n"


def split_events(body: bytes, codec: str) -> list[bytes] | None:
    """The raw bytes of each element of the body's top-level ``events`` array, or None if there is no such array
    (the body is then refused whole, as before)."""
    try:
        return _split_json(body) if codec == "json" else _split_msgpack(body)
    except (IndexError, ValueError, struct.error, msgspec.DecodeError):
        return None


def _split_json(body: bytes) -> list[bytes] | None:
    depth = 0
    last_string = b""
    key = b""
    start = -1  # where the current element of `events` begins; -1 outside the array
    elements: list[bytes] = []
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        first = token[:1]
        if first == b'"':
            if depth == 1:
                last_string = token
        elif first == b":":
            if depth == 1:
                key = last_string
        elif first in (b"[", b"{"):
            if depth == 1 and key == b'"events"' and first == b"[" and start < 0:
                start = match.start() + 1
            depth += len(token)
        elif first in (b"]", b"}"):
            if start >= 0 and depth - len(token) <= 1:  # this run closes the events array
                end = match.start() + (depth - 2)
                _keep(elements, body[start:end])
                return elements
            depth -= len(token)
        elif first == b",":
            if depth == 1:
                key = b""
            elif depth == 2 and start >= 0:
                _keep(elements, body[start : match.start()])
                start = match.end()
    return None


def _keep(elements: list[bytes], element: bytes) -> None:
    element = element.strip(_WHITESPACE)
    if element or elements:
        elements.append(element)


def _split_msgpack(body: bytes) -> list[bytes] | None:
    pairs, position = _container(body, 0, maps=True)
    for _ in range(pairs):
        key_end = _skip(body, position)
        key = msgspec.msgpack.decode(body[position:key_end])
        position = key_end
        if key == "events":
            count, position = _container(body, position, maps=False)
            elements = []
            for _ in range(count):
                end = _skip(body, position)
                elements.append(body[position:end])
                position = end
            return elements
        position = _skip(body, position)
    return None


def _container(body: bytes, position: int, *, maps: bool) -> tuple[int, int]:
    """(number of entries, offset of the first) of the map or array at ``position``."""
    head = body[position]
    if maps:
        if 0x80 <= head <= 0x8F:
            return head & 0x0F, position + 1
        if head in (0xDE, 0xDF):
            size = 2 if head == 0xDE else 4
            return int.from_bytes(body[position + 1 : position + 1 + size], "big"), position + 1 + size
    else:
        if 0x90 <= head <= 0x9F:
            return head & 0x0F, position + 1
        if head in (0xDC, 0xDD):
            size = 2 if head == 0xDC else 4
            return int.from_bytes(body[position + 1 : position + 1 + size], "big"), position + 1 + size
    raise ValueError("not a MessagePack " + ("map" if maps else "array"))


# fixed sizes after the type byte; bin/str/ext lengths and container counts are read from the bytes that follow it
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2}
_FIXED |= {0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
_LENGTH = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin, str: length then data
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # ext: length, type byte, data
_ARRAY = {0xDC: 2, 0xDD: 4}
_MAP = {0xDE: 2, 0xDF: 4}


def _skip(body: bytes, position: int) -> int:
    """The offset just past the MessagePack value at ``position``, however deeply it nests."""
    pending = 1
    while pending:
        pending -= 1
        head = body[position]
        position += 1
        if head <= 0x7F or head >= 0xE0:
            continue
        if head <= 0x8F:
            pending += 2 * (head & 0x0F)
        elif head <= 0x9F:
            pending += head & 0x0F
        elif head <= 0xBF:
            position += head & 0x1F
        elif head in _FIXED:
            position += _FIXED[head]
        elif head in _LENGTH:
            size = _LENGTH[head]
            position += size + int.from_bytes(body[position : position + size], "big")
        elif head in _EXT:
            size = _EXT[head]
            position += size + 1 + int.from_bytes(body[position : position + size], "big")
        elif head in _ARRAY or head in _MAP:
            size = _ARRAY.get(head) or _MAP[head]
            count = int.from_bytes(body[position : position + size], "big")
            pending += count if head in _ARRAY else 2 * count
            position += size
        else:
            raise ValueError(f"invalid MessagePack byte 0x{head:02x}")
        if position > len(body):
            raise ValueError("truncated MessagePack")
    return position
