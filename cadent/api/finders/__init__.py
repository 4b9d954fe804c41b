"""Finders: turn a graphite path pattern into branch and leaf nodes."""

from cadent.api.finders.glob import PatternError, expand_braces, match_node
from cadent.api.finders.whisper import Node, WhisperFinder

__all__ = ["Node", "PatternError", "WhisperFinder", "expand_braces", "match_node"]
