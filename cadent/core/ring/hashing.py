"""Ring position functions, bit-compatible with carbon's ``ROUTER_HASH_TYPE`` values.

* ``carbon_ch``: the first two bytes of MD5(key) as a big-endian integer, 0..65535.
* ``fnv1a_ch``: 32-bit FNV-1a folded to 16 bits, ``(h >> 16) ^ (h & 0xffff)``, 0..65535.
* ``mmh3_ch``: MurmurHash3 x86_32, seed 0, as a *signed* 32-bit integer.

Keys are Python strings hashed as UTF-8. Lone surrogates (only reachable through pickled names)
are encoded with ``surrogatepass`` so a hostile name can never make hashing raise.
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import md5


HASH_TYPES: tuple[str, ...] = ("carbon_ch", "fnv1a_ch", "mmh3_ch")

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def carbon_ch(key: str) -> int:
    """MD5-based position in 0..65535."""
    return int.from_bytes(md5(_utf8(key)).digest()[:2], "big")


def fnv1a_32(data: bytes) -> int:
    """Plain 32-bit FNV-1a of ``data``."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def fnv1a_ch(key: str) -> int:
    """FNV-1a 32 folded to a position in 0..65535."""
    h = fnv1a_32(_utf8(key))
    return (h >> 16) ^ (h & 0xFFFF)


def mmh3_ch(key: str) -> int:
    """MurmurHash3 x86_32 (seed 0) as a signed 32-bit position."""
    import mmh3  # imported on first use: graphite-web's own Python may lack it

    return mmh3.hash(_utf8(key))


_FUNCTIONS: dict[str, Callable[[str], int]] = {
    "carbon_ch": carbon_ch,
    "fnv1a_ch": fnv1a_ch,
    "mmh3_ch": mmh3_ch,
}


def position_function(hash_type: str) -> Callable[[str], int]:
    """The position function for ``hash_type``; ValueError names the accepted types."""
    try:
        return _FUNCTIONS[hash_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown hash type {hash_type!r}; expected one of {', '.join(HASH_TYPES)}"
        ) from None


def position(key: str, hash_type: str) -> int:
    """Ring position of ``key`` under ``hash_type``."""
    return position_function(hash_type)(key)


__all__ = [
    "HASH_TYPES",
    "carbon_ch",
    "fnv1a_ch",
    "fnv1a_32",
    "mmh3_ch",
    "position",
    "position_function",
]
