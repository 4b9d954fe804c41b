/*
 * cadent-statsd configuration, in Etsy statsd's config.js format.
 * Counters, timers, gauges and sets arrive on UDP 8125 and are flushed every
 * flushInterval ms to carbon's plaintext port (the local cadent-cache by default).
 */
{
  port: 8125,
  address: "0.0.0.0",
  mgmt_port: 8126,
  mgmt_address: "127.0.0.1",
  flushInterval: 10000,
  percentThreshold: [90],
  backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1",
  graphitePort: 2003,
  // lines for a carbon that is down wait on disk and survive restarts
  spoolDir: "/var/lib/cadent/spool/cadent-statsd",
  spoolMaxBytes: 1073741824,
  spoolAfterSeconds: 2
}
