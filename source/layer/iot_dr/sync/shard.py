"""Deterministic split of a fleet between runs: a thing belongs to one shard, whichever process asks."""

from __future__ import annotations

import hashlib

from iot_dr.sync.settings import Shard


def owns(shard: Shard, thing_name: str) -> bool:
    """Whether ``thing_name`` belongs to ``shard``: the first 8 bytes of its SHA-256, modulo the shard count
    (Python's ``hash`` differs between processes, so it cannot be used)."""
    digest = hashlib.sha256(thing_name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard.count == shard.index
