"""Fast carbon load generator.

Pre-builds plaintext or pickle payloads for N distinct metric names, then sends a
fixed number of datapoints over several TCP connections, as fast as the receiver
takes them or at a fixed rate. Payload building is not timed.

    python bench/loadgen.py --port 2003 --names 10000 --points 1000000 --connections 4
    python bench/loadgen.py --port 2004 --protocol pickle --rate 50000 --procs 2

Prints one JSON line: {"sent", "duration_s", "rate", "start_time", "end_time", ...}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass

LINE_CHUNK_POINTS = 2000        # lines per sendall()
PICKLE_FRAME_POINTS = 500       # datapoints per pickle frame (carbon's default message size)


@dataclass
class LoadResult:
    sent: int              # datapoints written to the sockets
    duration_s: float      # first send to last send completed
    start_time: float      # time.time() when sending began
    end_time: float        # time.time() when the last send returned
    connections: int
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> str:
        d = asdict(self)
        d["rate"] = round(self.rate, 1)
        return json.dumps(d)


def make_names(n: int, prefix: str = "bench") -> list[str]:
    """``n`` distinct dotted metric names with a realistic 4-level shape."""
    return [f"{prefix}.host{i % 1000:03d}.svc{(i // 1000) % 100:02d}.metric{i}" for i in range(n)]


def line_payload(names: list[str], ts: int, value_base: int = 0) -> bytes:
    """Plaintext lines ``name value ts\\n`` for every name."""
    return "".join(f"{name} {value_base + i} {ts}\n" for i, name in enumerate(names)).encode()


def pickle_frame(names: list[str], ts: int, value_base: int = 0) -> bytes:
    """One length-prefixed pickle frame (protocol 2) of ``(name, (ts, value))``."""
    body = pickle.dumps([(name, (ts, float(value_base + i))) for i, name in enumerate(names)],
                        protocol=2)
    return struct.pack("!L", len(body)) + body


def build_chunks(names: list[str], protocol: str, ts: int) -> list[tuple[bytes, int]]:
    """The payload for one pass over ``names``, split into (bytes, datapoints) chunks."""
    step = LINE_CHUNK_POINTS if protocol == "line" else PICKLE_FRAME_POINTS
    encode = line_payload if protocol == "line" else pickle_frame
    return [(encode(names[i:i + step], ts, i), len(names[i:i + step]))
            for i in range(0, len(names), step)]


def _send_connection(host: str, port: int, chunks: list[tuple[bytes, int]], sends: int,
                     tail: bytes, quota: int, rate: float | None, start_evt: threading.Event,
                     out: list, idx: int) -> None:
    """Send ``chunks`` cyclically ``sends`` times, then ``tail``; record (sent, errors)."""
    sent = 0
    errors = 0
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    start_evt.wait()
    t0 = time.monotonic()
    n = len(chunks)
    try:
        for i in range(sends):
            data, count = chunks[i % n]
            sock.sendall(data)
            sent += count
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        if tail:
            sock.sendall(tail)
        sent = quota
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    except OSError:
        errors += 1
    finally:
        sock.close()
    out[idx] = (sent, errors)


def run_load(host: str, port: int, *, names: int = 10000, points: int = 1_000_000,
             connections: int = 4, protocol: str = "line", rate: float | None = None,
             prefix: str = "bench", ts: int | None = None, barrier=None) -> LoadResult:
    """Send ``points`` datapoints for ``names`` distinct names over ``connections``.

    Names are split across connections (each name always on the same one);
    connection k cycles over its names until its share of ``points`` is sent.
    ``rate`` (datapoints/s, total) paces sending; None sends as fast as possible.
    """
    if protocol not in ("line", "pickle"):
        raise ValueError("protocol must be 'line' or 'pickle'")
    ts = int(time.time()) if ts is None else ts
    all_names = make_names(names, prefix)
    connections = max(1, min(connections, names))
    shares = [points // connections + (1 if k < points % connections else 0)
              for k in range(connections)]
    step = LINE_CHUNK_POINTS if protocol == "line" else PICKLE_FRAME_POINTS
    encode = line_payload if protocol == "line" else pickle_frame
    plans = []
    for k in range(connections):
        mine = all_names[k::connections]
        chunks = build_chunks(mine, protocol, ts)
        passes, rest = divmod(shares[k], len(mine))
        sends = passes * len(chunks) + rest // step
        tail_names = mine[(rest // step) * step:rest]
        tail = encode(tail_names, ts, (rest // step) * step) if tail_names else b""
        plans.append((chunks, sends, tail, shares[k]))
    evt = threading.Event()
    out: list = [(0, 1)] * connections
    per_conn_rate = rate / connections if rate else None
    threads = [threading.Thread(target=_send_connection,
                                args=(host, port, chunks, sends, tail, quota, per_conn_rate, evt,
                                      out, k),
                                daemon=True)
               for k, (chunks, sends, tail, quota) in enumerate(plans)]
    for t in threads:
        t.start()
    if barrier is not None:
        barrier.wait()
    time.sleep(0.05)            # let every thread connect before the clock starts
    start_time = time.time()
    t0 = time.monotonic()
    evt.set()
    for t in threads:
        t.join()
    duration = time.monotonic() - t0
    return LoadResult(sent=sum(s for s, _ in out), duration_s=duration, start_time=start_time,
                      end_time=start_time + duration, connections=connections,
                      errors=sum(e for _, e in out))


def _proc_main(kwargs, barrier, queue):
    try:
        queue.put(asdict(run_load(barrier=barrier, **kwargs)))
    except Exception as exc:  # reported to the parent, which fails loudly
        queue.put({"error": repr(exc)})


def run_load_procs(host: str, port: int, *, procs: int = 1, names: int = 10000,
                   points: int = 1_000_000, connections: int = 4, **kw) -> LoadResult:
    """``run_load`` split across ``procs`` processes (names and points divided)."""
    if procs <= 1:
        return run_load(host, port, names=names, points=points, connections=connections, **kw)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs)
    queue = ctx.Queue()
    workers = []
    for p in range(procs):
        kwargs = dict(kw, host=host, port=port,
                      names=names // procs + (1 if p < names % procs else 0),
                      points=points // procs + (1 if p < points % procs else 0),
                      connections=max(1, connections // procs),
                      prefix=f"{kw.get('prefix', 'bench')}.p{p}")
        if kwargs.get("rate"):
            kwargs["rate"] = kwargs["rate"] / procs
        w = ctx.Process(target=_proc_main, args=(kwargs, barrier, queue), daemon=True)
        w.start()
        workers.append(w)
    results = [queue.get(timeout=3600) for _ in workers]
    for w in workers:
        w.join(10)
    errs = [r["error"] for r in results if "error" in r]
    if errs:
        raise RuntimeError("; ".join(errs))
    start = min(r["start_time"] for r in results)
    end = max(r["end_time"] for r in results)
    return LoadResult(sent=sum(r["sent"] for r in results), duration_s=end - start,
                      start_time=start, end_time=end,
                      connections=sum(r["connections"] for r in results),
                      errors=sum(r["errors"] for r in results))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", choices=("line", "pickle"), default="line")
    ap.add_argument("--names", type=int, default=10000, help="distinct metric names")
    ap.add_argument("--points", type=int, default=1_000_000, help="datapoints to send in total")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--rate", type=float, default=None, help="datapoints/s (default: unpaced)")
    ap.add_argument("--procs", type=int, default=1, help="sending processes")
    ap.add_argument("--prefix", default="bench")
    args = ap.parse_args(argv)
    result = run_load_procs(args.host, args.port, procs=args.procs, names=args.names,
                            points=args.points, connections=args.connections,
                            protocol=args.protocol, rate=args.rate, prefix=args.prefix)
    print(result.to_json(), flush=True)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
