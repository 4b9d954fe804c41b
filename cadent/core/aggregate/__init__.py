"""carbon aggregation: rule methods, interval buffers with carbon's timing, the aggregate stage."""

from cadent.core.aggregate.aggregator import Aggregator
from cadent.core.aggregate.buffers import AggregationBuffers
from cadent.core.aggregate.methods import METHODS
from cadent.core.aggregate.pipeline import AggregatorPipeline

__all__ = ["Aggregator", "AggregationBuffers", "AggregatorPipeline", "METHODS"]
