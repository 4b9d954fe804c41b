"""cadent: drop-in replacements for Graphite's carbon daemons and Etsy's statsd."""

__version__ = "0.1.0"
