"""Finders: turn a graphite path pattern into branch and leaf nodes."""

from cadent.api.finders.whisper import Node, WhisperFinder, expand_braces, match_node

__all__ = ["Node", "WhisperFinder", "expand_braces", "match_node"]
