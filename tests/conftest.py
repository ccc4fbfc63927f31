"""Suite-wide settings: the hypothesis profiles of the property tests.

``ci`` (the default) derandomizes: every run, local or CI, tries the same inputs, so a
red build is reproduced by running the same command, and no example database is read
or written (nothing a run leaves behind changes the next one). ``explore`` draws fresh
random inputs on every run (each test keeps its own ``max_examples``) and keeps
failures in the local database: run it a few times to hunt, e.g.
``HYPOTHESIS_PROFILE=explore pytest tests/unit -k properties``, then pin what it finds
as an explicit ``@example``.

``bootstrap`` is the Kafka-protocol broker of the integration and browser tests:
``KAFKA_BOOTSTRAP`` points the suite at an existing cluster; otherwise the embedded
broker (Tansu) is started once for the session on a free port, when a test first asks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from gateway.transport.broker import EmbeddedBroker

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedBroker.start() as broker:
        yield broker.bootstrap
