"""Framing between the local cloud and its Lambda worker processes: one JSON document per message.

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The worker reads requests
on its standard input and answers on a duplicate of its original standard output; whatever the handler (or
native code) prints goes to standard error, so it can never corrupt a message.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

_HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other end closed the pipe (for a worker: it exited or crashed)."""


class ChannelTimeout(Exception):
    """No complete message arrived before the deadline."""


def write_message(fd: int, message: Any) -> None:
    """Send ``message`` (JSON-serialisable) on ``fd``; raises ``ChannelClosed`` when the reader is gone."""
    body = json.dumps(message).encode("utf-8")
    data = _HEADER.pack(len(body)) + body
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except (BrokenPipeError, OSError) as err:
        raise ChannelClosed(str(err)) from err


def read_message(fd: int, deadline: float | None = None) -> Any:
    """The next message on ``fd``; ``deadline`` is a ``time.monotonic()`` value (None waits forever).

    Raises ``ChannelClosed`` at end of file and ``ChannelTimeout`` when the deadline passes first.
    """
    (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    return json.loads(_read_exactly(fd, length, deadline))


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise ChannelTimeout(f"no message within the deadline ({size - remaining} of {size} bytes read)")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed("end of file")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
