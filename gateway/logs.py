"""Structured logging set-up: JSON lines with stable snake_case event names.

Payload plaintext, tokens and private keys are never passed to a logger; the
audit stream (:mod:`gateway.audit`) carries digests instead.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(stream: TextIO | None = None, *, level: int = logging.INFO) -> None:
    """Send gateway and library logs to ``stream`` (stderr by default) as JSON."""
    target = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(target),
        cache_logger_on_first_use=False,
    )
    # aiokafka and aiohttp log through the standard library: keep their warnings.
    handler = logging.StreamHandler(target)
    handler.setFormatter(
        logging.Formatter(
            '{"logger": "%(name)s", "level": "%(levelname)s", "event": "%(message)s"}'
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
