"""cadent-echo: a server that prints or counts the lines it receives.

    cadent-echo --listen tcp://127.0.0.1:2003            # print every line
    cadent-echo --listen udp://127.0.0.1:8125 --count    # a line of counts every --interval
    cadent-echo --listen tcp://127.0.0.1:2003 --listen udp://127.0.0.1:2003 --count --exit-after 60

Stands in for a carbon-cache or statsd while trying a relay out. Lines longer than
``--max-line`` bytes are cut and counted. SIGTERM/SIGINT print the totals and exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Callable

import gevent
import gevent.event
from gevent.server import DatagramServer, StreamServer

READ_BYTES = 65536


class LineCounter:
    """Counts (and optionally prints) complete lines; partial lines wait for their end."""

    def __init__(self, out: Callable[[bytes], None] | None, max_line: int) -> None:
        self.out = out
        self.max_line = max_line
        self.lines = 0
        self.bytes = 0
        self.too_long = 0
        self.connections = 0

    def feed(self, data: bytes, pending: bytearray) -> None:
        """Take ``data`` read after ``pending`` (the unterminated tail, kept by the caller)."""
        self.bytes += len(data)
        pending += data
        end = pending.rfind(b"\n")
        if end < 0:
            if len(pending) > self.max_line:
                self.too_long += 1
                del pending[:]
            return
        complete = bytes(pending[:end])
        del pending[:end + 1]
        for line in complete.split(b"\n"):
            if len(line) > self.max_line:
                self.too_long += 1
                line = line[:self.max_line]
            self.lines += 1
            if self.out is not None:
                self.out(line)

    def summary(self) -> dict:
        return {"lines": self.lines, "bytes": self.bytes, "too_long": self.too_long,
                "connections": self.connections}


def parse_listen(url: str) -> tuple[str, str, int]:
    """``tcp://host:port`` or ``udp://host:port`` (the daemons' LISTEN syntax) →
    (scheme, host, port); ValueError says why not."""
    from cadent.core.net.inputs import parse_listen as parse_listen_url

    usage = f"--listen takes tcp://host:port or udp://host:port, not {url!r}"
    try:
        listen = parse_listen_url(url)
    except ValueError as exc:
        raise ValueError(f"{usage} ({exc})") from None
    if listen.scheme not in ("tcp", "udp"):
        raise ValueError(usage)
    return listen.scheme, listen.host, listen.port


def serve(listens: list[str], counter: LineCounter) -> list:
    servers = []
    for url in listens:
        scheme, host, port = parse_listen(url)
        if scheme == "tcp":
            def handle(sock, address):
                counter.connections += 1
                pending = bytearray()
                while True:
                    data = sock.recv(READ_BYTES)
                    if not data:
                        break
                    counter.feed(data, pending)
                if pending:
                    counter.feed(b"\n", pending)
            server = StreamServer((host, port), handle)
        else:
            def handle_datagram(data, address):
                counter.feed(data if data.endswith(b"\n") else data + b"\n", bytearray())
            server = DatagramServer((host, port), handle_datagram)
        server.start()
        print(f"cadent-echo: listening on {scheme}://{host}:{server.server_port}", file=sys.stderr,
              flush=True)
        servers.append(server)
    return servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadent-echo", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", action="append", required=True,
                        help="tcp://host:port or udp://host:port (repeatable)")
    parser.add_argument("--count", action="store_true", help="print counts instead of lines")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between counts")
    parser.add_argument("--exit-after", type=float, help="stop after this many seconds")
    parser.add_argument("--max-line", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    out = None
    if not args.count:
        def out(line: bytes) -> None:
            sys.stdout.buffer.write(line + b"\n")
    counter = LineCounter(out, args.max_line)
    try:
        servers = serve(args.listen, counter)
    except (ValueError, OSError) as exc:
        print(f"cadent-echo: {exc}", file=sys.stderr)
        return 1
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    deadline = time.monotonic() + args.exit_after if args.exit_after else None
    while not stop.is_set():
        wait = args.interval if deadline is None else min(args.interval,
                                                          max(0.0, deadline - time.monotonic()))
        stop.wait(wait)
        if args.count:
            print(json.dumps(counter.summary()), flush=True)
        else:
            sys.stdout.flush()
        if deadline is not None and time.monotonic() >= deadline:
            break
    for server in servers:
        server.stop(timeout=1)
    sys.stdout.flush()
    print(json.dumps({"total": counter.summary()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
