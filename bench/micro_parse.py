"""Micro-benchmark of the inbound parsers and outbound encoders on one core.

Prints lines/s (datapoints/s) for a realistic plaintext mix: 100k distinct metric names,
integer and float values, current timestamps, fed in 64 KiB reads as a TCP receiver would.
The plaintext parser runs twice, compiled and as its Python twin, and the ratio is printed
(the compiled run is skipped when the compiled module is not built).

    .venv/bin/python bench/micro_parse.py [--lines N] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cadent.core.encode.pickle import encode_pickle
from cadent.core.encode.plaintext import encode_lines
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.parse.plaintext import LineParser
from cadent.compiled import compiled_module, python_twin

READ_SIZE = 65536


def make_stream(lines: int, names: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    pool = [
        "servers.host%04d.%s.%s" % (i % 2000, rng.choice(["cpu", "mem", "disk", "net"]),
                                     "metric%03d" % (i // 2000))
        for i in range(names)
    ]
    now = 1700000000
    out = []
    for i in range(lines):
        name = pool[i % names]
        if i % 2:
            value = str(rng.randint(0, 100000))
        else:
            value = repr(round(rng.uniform(-1000, 1000), rng.randint(1, 6)))
        out.append("%s %s %d\n" % (name, value, now + i // names * 10))
    return "".join(out).encode()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def line_aligned(data: bytes, size: int) -> list[bytes]:
    """Cut ``data`` into pieces of at most ``size`` bytes that end at a newline."""
    out = []
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1
        out.append(data[start:end])
        start = end
    return out


def best_rate(fn, count: int, repeat: int) -> float:
    """Items per second of CPU time, best of ``repeat`` runs (CPU time is steadier than wall
    time on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    stream = make_stream(args.lines, args.names)
    python_rates = plaintext_rates(python_twin(PLAINTEXT).LineParser, stream, args)
    compiled = compiled_module(PLAINTEXT)
    if compiled is None:
        print("compiled plaintext parser not built: Python twin only")
        for case, rate in python_rates.items():
            print("plaintext parse (%s): %.2fM lines/s" % (case, rate / 1e6))
    else:
        for case, rate in plaintext_rates(compiled.LineParser, stream, args).items():
            print("plaintext parse (%s): compiled %.2fM lines/s, Python %.2fM lines/s, %.2fx"
                  % (case, rate / 1e6, python_rates[case] / 1e6, rate / python_rates[case]))
    other_rates(stream, args)


PLAINTEXT = "cadent.core.parse.plaintext"


def plaintext_rates(LineParser, stream: bytes, args) -> dict[str, float]:
    """lines/s of the plaintext parser class ``LineParser`` on its three paths."""
    rates = {}
    reads = chunks(stream, READ_SIZE)

    def parse_all():
        line_parser = LineParser()
        total = 0
        for read in reads:
            total += len(line_parser.feed(read))
        assert total == args.lines, total

    rates["TCP, 64 KiB reads"] = best_rate(parse_all, args.lines, args.repeat)

    dirty = [b"this line is invalid\n" + read for read in reads]

    def parse_dirty():
        line_parser = LineParser()
        for read in dirty:
            line_parser.feed(read)

    rates["TCP, one invalid line in every 64 KiB read: line-by-line path"] = best_rate(
        parse_dirty, args.lines, args.repeat)

    datagrams = line_aligned(stream, 1400)

    def parse_udp():
        line_parser = LineParser()
        total = 0
        for datagram in datagrams:
            total += len(line_parser.feed_datagram(datagram))
        assert total == args.lines, total

    rates["UDP, datagrams of whole lines up to 1400 bytes"] = best_rate(
        parse_udp, args.lines, args.repeat)
    return rates


def other_rates(stream: bytes, args) -> None:
    """The pickle parser and both encoders, as they are imported."""
    batch = LineParser().feed(stream)
    bursts = [batch[i : i + 500] for i in range(0, len(batch), 500)]
    frames = b"".join(encode_pickle(burst) for burst in bursts)
    frame_reads = chunks(frames, READ_SIZE)

    def parse_pickle():
        pickle_parser = PickleFrameParser()
        total = 0
        for read in frame_reads:
            total += len(pickle_parser.feed(read))
        assert total == args.lines, total

    rate = best_rate(parse_pickle, args.lines, args.repeat)
    print("pickle parse (500-point frames, 64 KiB reads): %.2fM points/s" % (rate / 1e6))

    int_frames = b"".join(
        encode_pickle([(name, (int(ts), value)) for name, (ts, value) in burst])
        for burst in bursts
    )
    int_reads = chunks(int_frames, READ_SIZE)

    def parse_int_pickle():
        pickle_parser = PickleFrameParser()
        for read in int_reads:
            pickle_parser.feed(read)

    rate = best_rate(parse_int_pickle, args.lines, args.repeat)
    print("pickle parse (int timestamps, converted to floats): %.2fM points/s" % (rate / 1e6))

    rate = best_rate(lambda: [encode_lines(b) for b in bursts], args.lines, args.repeat)
    print("line encode (500-point bursts): %.2fM points/s" % (rate / 1e6))
    rate = best_rate(lambda: [encode_pickle(b) for b in bursts], args.lines, args.repeat)
    print("pickle encode (500-point bursts): %.2fM points/s" % (rate / 1e6))


if __name__ == "__main__":
    main()
