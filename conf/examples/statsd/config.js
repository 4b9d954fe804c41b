/*
 * Replace Etsy statsd: same config.js, same ports, same metric names.
 *   cadent-statsd --config conf/examples/statsd/config.js --nodaemon
 * Counters, timers, gauges and sets on UDP 8125; every 10 s the aggregates go to a
 * carbon (or cadent) plaintext listener.
 */
{
  port: 8125,
  address: "0.0.0.0",
  mgmt_port: 8126,
  mgmt_address: "127.0.0.1",
  flushInterval: 10000,
  percentThreshold: [90, 99],
  deleteIdleStats: false,
  backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1",
  graphitePort: 2003,
  graphite: {
    legacyNamespace: true
  }
}
