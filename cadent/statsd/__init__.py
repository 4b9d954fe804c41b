"""Etsy statsd compatibility: parsing, aggregation, flush math and graphite output, no I/O.

See :mod:`cadent.statsd.engine` for how a daemon wires it, and :mod:`cadent.statsd.store`
for the multi-process shard design.
"""
