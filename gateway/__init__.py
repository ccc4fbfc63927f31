"""Interagency data-exchange gateway.

Payloads checked against versioned data contracts, signed by their sender,
encrypted to each recipient and routed over Kafka; see README.md.
"""

__version__ = "0.1.0"
