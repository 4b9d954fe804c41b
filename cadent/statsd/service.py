"""The running statsd aggregator: inputs → :class:`StatsdEngine` → flush clock → carbon.

One process (``workers: 1``, statsd's exact line order) or several sharing the port
(:mod:`cadent.statsd.shards`). Unlike statsd, stopping (SIGTERM) reads what is still queued
in the UDP socket, makes a final flush and delivers it (and anything carbon has not yet
taken) within ``shutdownDrainSeconds``; with a disk spool (``spoolDir``) what an unreachable
carbon has not taken is spooled at once instead, for the next start to deliver. The final
flush is stamped with the time of the flush slot that would have come next, never with a
timestamp already flushed: carbon keeps one value per timestamp, so a second one would
replace the interval just sent. :meth:`StatsdService.stop` is False when lines could be
neither delivered nor spooled (the daemon then exits 1).
"""

from __future__ import annotations

import logging
import math
import os
import time

import gevent

from cadent.core.flow import FlowControl
from cadent.core.stats import Stats
from cadent.statsd.carbon import CarbonOutput
from cadent.statsd.config import StatsdSettings
from cadent.statsd.engine import StatsdEngine, collector_paused
from cadent.statsd.mgmt import handle_command
from cadent.statsd.numbers import round_half_up
from cadent.statsd.net import CommandServer, Repeater, TcpPacketInput, UdpPacketInput
from cadent.statsd.shards import ShardMesh, worker_index

log = logging.getLogger(__name__)
dump_log = logging.getLogger("cadent.statsd.messages")


class StatsdService:
    """Start/stop/reload wrapper the shared CLI drives."""

    def __init__(self, settings: StatsdSettings, *, worker: int | None = None, group: str | None = None) -> None:
        self.settings = settings
        self.index = worker_index() if worker is None else worker
        self.count = settings.workers
        self.engine = StatsdEngine(settings)
        self.stats = Stats()
        self.flow = FlowControl()
        self.mesh: ShardMesh | None = None
        if self.count > 1:
            self.mesh = ShardMesh(self.engine, self.index, self.count, group or str(os.getppid()))
        self.leader = self.index == 0
        self.carbon = CarbonOutput(settings, flow=self.flow, stats=self.stats) if self.leader else None
        self.repeater = None
        if "./backends/repeater" in settings.backends and settings.repeater:
            self.repeater = Repeater(settings.repeater, settings.repeater_protocol)
        self.graphite_enabled = "./backends/graphite" in settings.backends
        reuse = self.count > 1
        self.udp: list[UdpPacketInput] = []
        self.tcp: list[TcpPacketInput] = []
        for spec in settings.input_servers():
            host = spec.address
            if spec.address_ipv6 and host == "0.0.0.0":
                host = "::"
            if spec.server == "./servers/tcp":
                self.tcp.append(TcpPacketInput(host, spec.port, self.handle_packet, reuse_port=reuse,
                                               on_too_long=self.engine.count_too_long))
            else:
                self.udp.append(UdpPacketInput(host, spec.port, self.handle_packet, reuse_port=reuse,
                                               receive_buffer=settings.udp_receive_buffer))
        self.mgmt = CommandServer(settings.mgmt_address, settings.mgmt_port, self.command, "statsd") \
            if self.leader else None
        self._flusher: gevent.Greenlet | None = None
        self._flushes = 0
        self._next_slot = 1  # flush k is due at started_s*1000 + k*flushInterval

    # -- input --------------------------------------------------------------------------

    def handle_packet(self, packet: bytes) -> None:
        """One statsd packet (a datagram or the complete lines of a TCP read)."""
        if self.repeater is not None:
            self.repeater.forward(packet)
        if self.settings.dump_messages:
            dump_log.info("%s", packet.decode("utf-8", "replace"))
        mesh = self.mesh
        if mesh is None:
            self.engine.ingest(packet)
            return
        engine = self.engine
        result = engine.parser.parse(packet.decode("utf-8", "replace"))
        engine.store.count_packet(1, result.metrics, result.bad)
        engine.stats.bad_lines_total += result.bad
        engine.stats.last_msg_seen_s = int(time.time() + 0.5)
        if result.updates:
            mesh.route(result.updates)

    def command(self, text: str) -> tuple[str, bool]:
        reply = handle_command(self.engine, text)
        if self.mesh is not None:
            parts = text.strip().split(" ")
            if parts[0] in ("delcounters", "deltimers", "delgauges"):
                self.mesh.broadcast_delete(parts[0][3:], parts[1:])
        return reply.text, reply.close

    # -- flush --------------------------------------------------------------------------

    def flush_now(self, now_ms: float | None = None) -> int:
        """Make one flush (stamped ``now_ms``, default now) and queue it for carbon;
        returns the number of lines."""
        started = time.monotonic()
        if self.mesh is not None:
            self.mesh.collect(timeout_s=min(5.0, max(0.2, self.settings.flush_interval_s / 2)))
        result = self.engine.flush(time.time() * 1000 if now_ms is None else now_ms)
        if self.carbon is not None and self.graphite_enabled and self.carbon.output is not None:
            with collector_paused():          # one point per line, none in a cycle
                self.carbon.send_lines(result.lines)
            self.engine.note_sent(time.time(), (time.monotonic() - started) * 1000,
                                  StatsdEngine.payload_length(result))
        self._flushes += 1
        return len(result.lines)

    def _slot_ms(self, k: int) -> float:
        return self.engine.stats.started_s * 1000 + k * self.settings.flush_interval_ms

    def final_flush_ms(self) -> float:
        """When the final flush is stamped: the next flush slot, later than every flush made."""
        k = self._next_slot
        last_ts = self.engine.last_flush_ts
        while round_half_up(self._slot_ms(k) / 1000) <= last_ts:
            k += 1
        return self._slot_ms(k)

    def _flush_loop(self) -> None:
        interval_ms = self.settings.flush_interval_ms
        start_ms = self.engine.stats.started_s * 1000
        k = 1
        while True:
            self._next_slot = k
            due_ms = start_ms + k * interval_ms
            delay = due_ms / 1000 - time.time()
            if delay > 0:
                gevent.sleep(delay)
            else:
                # fell behind (a flush took longer than the interval): skip to the next slot
                k = max(k, math.floor((time.time() * 1000 - start_ms) / interval_ms))
            self._next_slot = k
            try:
                self.flush_now()
            except Exception:
                log.exception("flush failed")
            k += 1

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start sending (recovering any spool first: an unusable spool directory raises
        OSError before anything else starts), then the mesh, the inputs and the flush clock."""
        if self.carbon is not None:
            self.carbon.start()
        if self.mesh is not None:
            self.mesh.start()
        for server in (*self.udp, *self.tcp):
            server.start()
        if self.mgmt is not None:
            self.mgmt.start()
        if self.leader:
            self._flusher = gevent.spawn(self._flush_loop)
        log.info("statsd worker %d of %d started (flushInterval %d ms)", self.index, self.count,
                 self.settings.flush_interval_ms)

    def stop(self) -> bool:
        """Stop reading, take in what is queued, flush a last time and deliver (or spool) it;
        False when lines were left neither delivered nor spooled."""
        started = self._flusher is not None   # a start that failed has nothing to flush
        for server in self.udp:
            server.stop()
        for server in self.tcp:
            server.stop()
        for server in self.udp:
            server.drain()
            server.close()
        if self._flusher is not None:
            self._flusher.kill(block=True, timeout=5)
            self._flusher = None
        if self.mesh is not None:
            self.mesh.finish(timeout_s=5.0)
        left = 0
        if self.leader:
            if self.mgmt is not None:
                self.mgmt.stop()
            dropped_before = self.carbon.dropped if self.carbon is not None else 0
            if started:
                # the final flush: statsd computes it too but loses it; here it is delivered
                saved, self.mesh = self.mesh, None
                try:
                    self.flush_now(self.final_flush_ms())
                except Exception:
                    log.exception("final flush failed")
                finally:
                    self.mesh = saved
            if self.carbon is not None:
                left = self.carbon.stop(self.settings.drain_seconds)
                # lines dropped from the final flush on (into a full spool or a stalled queue,
                # or refused by the spool at exit) are lost at exit too; a spool's count
                # already includes the lines it could not write
                dropped = self.carbon.dropped - dropped_before
                left = max(left, dropped) if self.carbon.spool is not None else left + dropped
                if left:
                    log.error("%d lines of statsd's flushes were neither delivered to carbon "
                              "nor spooled", left)
        if self.mesh is not None:
            self.mesh.close()
        if self.repeater is not None:
            self.repeater.close()
        return left == 0

    def reload(self) -> None:
        log.info("statsd has no rules to reload; restart to apply config changes")


__all__ = ["StatsdService"]
