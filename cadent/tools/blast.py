"""cadent-blast: send a steady load of metrics to try a deployment out.

    cadent-blast --host 127.0.0.1 --port 2003 --rate 10000 --names 1000 --duration 30
    cadent-blast --port 8125 --proto udp --format statsd --count 100000
    cadent-blast --port 2003 --format line --template 'app={name} took {value}ms'

Formats: ``graphite`` (``name value timestamp``), ``statsd`` (``name:value|c``, ``|ms`` and
``|g`` in turn), ``line`` (any text: ``--template`` with ``{name}``, ``{value}``, ``{ts}``).
Sends at ``--rate`` lines per second (0: as fast as the socket takes them) until ``--count``
lines or ``--duration`` seconds, whichever comes first; prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Callable, Iterator

STATSD_TYPES = ("c", "ms", "g")
UDP_DATAGRAM_BYTES = 1400      # fits one Ethernet frame, as statsd clients keep them
TCP_CHUNK_LINES = 500
TICK_S = 0.01


def names_for(count: int, prefix: str) -> list[str]:
    """``count`` distinct dotted names under ``prefix``."""
    return [f"{prefix}.host{i % 100:02d}.metric{i}" for i in range(count)]


def line_maker(fmt: str, template: str | None) -> Callable[[str, int, int], str]:
    """A function (name, i, ts) → one line (without its newline) of format ``fmt``."""
    if fmt == "graphite":
        return lambda name, i, ts: f"{name} {i % 1000} {ts}"
    if fmt == "statsd":
        return lambda name, i, ts: f"{name}:{i % 1000}|{STATSD_TYPES[i % len(STATSD_TYPES)]}"
    if fmt == "line":
        if not template:
            raise ValueError("--format line needs --template")
        return lambda name, i, ts: template.format(name=name, value=i % 1000, ts=ts)
    raise ValueError(f"unknown format {fmt!r}")


def lines(names: list[str], make: Callable[[str, int, int], str]) -> Iterator[bytes]:
    """Endless lines over ``names`` in turn, stamped with the current second."""
    i = 0
    count = len(names)
    while True:
        yield (make(names[i % count], i, int(time.time())) + "\n").encode()
        i += 1


def packets(source: Iterator[bytes], proto: str, wanted: int) -> tuple[list[bytes], int]:
    """Up to ``wanted`` lines packed as datagrams (udp) or one chunk (tcp), and their count."""
    if proto == "tcp":
        chunk = [next(source) for _ in range(wanted)]
        return [b"".join(chunk)], len(chunk)
    out: list[bytes] = []
    current = b""
    for _ in range(wanted):
        line = next(source)
        if current and len(current) + len(line) > UDP_DATAGRAM_BYTES:
            out.append(current)
            current = b""
        current += line
    if current:
        out.append(current)
    return out, wanted


def blast(host: str, port: int, proto: str, source: Iterator[bytes], rate: float,
          count: int | None, duration: float | None) -> dict:
    """Send lines from ``source``; the summary as a dict."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if proto == "udp":
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.connect((host, port))
    else:
        sock = socket.create_connection((host, port), timeout=30)
    started = time.monotonic()
    sent = errors = 0
    deadline = started + duration if duration else None
    try:
        while count is None or sent < count:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if rate > 0:
                due = int((now - started) * rate) + 1 - sent
                if due <= 0:
                    time.sleep(min(TICK_S, (sent + 1) / rate - (now - started)))
                    continue
            else:
                due = TCP_CHUNK_LINES
            if count is not None:
                due = min(due, count - sent)
            datagrams, n = packets(source, proto, min(due, 10 * TCP_CHUNK_LINES))
            for data in datagrams:
                try:
                    sock.sendall(data) if proto == "tcp" else sock.send(data)
                except OSError:
                    if proto == "tcp":
                        raise
                    errors += 1
            sent += n
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    return {"sent": sent, "errors": errors, "seconds": round(elapsed, 3),
            "rate": round(sent / elapsed, 1) if elapsed > 0 else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadent-blast", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2003)
    parser.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    parser.add_argument("--format", choices=("graphite", "statsd", "line"), default="graphite")
    parser.add_argument("--template", help="the line for --format line ({name} {value} {ts})")
    parser.add_argument("--names", type=int, default=1000, help="distinct metric names")
    parser.add_argument("--prefix", default="blast")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="lines per second; 0 = as fast as possible")
    parser.add_argument("--count", type=int, help="stop after this many lines")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    if args.names < 1:
        parser.error("--names must be at least 1")
    if args.count is None and args.duration is None:
        parser.error("give --count or --duration (or both)")
    try:
        make = line_maker(args.format, args.template)
        make("x", 0, 0)
    except (ValueError, KeyError, IndexError) as exc:
        parser.error(f"bad --template: {exc}")
    try:
        summary = blast(args.host, args.port, args.proto, lines(names_for(args.names, args.prefix),
                                                                 make),
                        args.rate, args.count, args.duration)
    except OSError as exc:
        print(f"cadent-blast: {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
