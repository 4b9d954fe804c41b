"""DESTINATIONS entries: ``host:port[:instance]`` and ``[ipv6]:port[:instance]``.

Parsing follows carbon exactly: each entry is stripped; a leading ``[`` takes the host up to
the last ``]:``; otherwise the host ends at the first ``:``. Whatever follows the port's
``:`` is the instance, colons included, so ``h:2004:`` has instance ``""`` (not None).
Hosts are kept as written: ``localhost`` and ``127.0.0.1`` are different ring members.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Destination:
    """One downstream carbon: hashing routers identify it by ``(host, instance)``."""

    host: str
    port: int
    instance: str | None

    @property
    def node(self) -> tuple[str, str | None]:
        """The ring identity ``(host, instance)``; the port is not part of it."""
        return (self.host, self.instance)

    @property
    def key(self) -> str:
        """``host:port:instance`` with a missing instance written ``None``."""
        return "%s:%d:%s" % (self.host, self.port, self.instance)

    @property
    def metric_key(self) -> str:
        """:attr:`key` with every ``.`` turned into ``_``, as used in self-metric names."""
        return self.key.replace(".", "_")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}:{self.instance or ''}"


def parse_destination(item: str) -> Destination:
    """Parse one DESTINATIONS entry; ValueError says what is wrong with it."""
    text = item.strip()
    if text.startswith("["):
        close = text.rfind("]:")
        if close < 0:
            raise ValueError(f"invalid destination {item!r}: expected '[host]:port[:instance]'")
        host, rest = text[1:close], text[close + 2:]
    else:
        host, sep, rest = text.partition(":")
        if not sep:
            raise ValueError(f"invalid destination {item!r}: expected 'host:port[:instance]'")
    port_text, sep, instance = rest.partition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid destination {item!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid destination {item!r}: port {port} is out of range")
    return Destination(host, port, instance if sep else None)


def parse_destinations(items: Iterable[str]) -> list[Destination]:
    """Parse DESTINATIONS entries in order (duplicates are allowed here; see below)."""
    return [parse_destination(item) for item in items]


def check_unique_nodes(destinations: Sequence[Destination]) -> None:
    """Refuse two destinations sharing ``(host, instance)``, as hashing routers require."""
    seen: dict[tuple[str, str | None], Destination] = {}
    for dest in destinations:
        other = seen.get(dest.node)
        if other is not None:
            raise ValueError(
                f"destination instance ({dest.host}, {dest.instance}) already configured: "
                f"{other} and {dest} share host and instance (the port is not part of a "
                "hashing destination's identity; give them distinct instances)"
            )
        seen[dest.node] = dest


__all__ = ["Destination", "check_unique_nodes", "parse_destination", "parse_destinations"]
