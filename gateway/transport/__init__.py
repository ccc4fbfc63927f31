"""Moving records to and from the broker, behind small protocols.

The routing and delivery code speaks only :class:`Publisher` and
:class:`RecordSource`; :mod:`gateway.transport.kafka` implements them with
aiokafka, and unit tests use in-memory fakes.
"""

from gateway.transport.records import (
    InboundRecord,
    ManagedPublisher,
    OutboundRecord,
    Partition,
    Publisher,
    RecordSource,
    TopicReader,
    Transport,
)

__all__ = [
    "InboundRecord",
    "ManagedPublisher",
    "OutboundRecord",
    "Partition",
    "Publisher",
    "RecordSource",
    "TopicReader",
    "Transport",
]
