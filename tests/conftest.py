"""Suite-wide settings: the hypothesis profiles of the property tests.

``ci`` (the default) derandomizes: every run, local or CI, tries the same inputs, so a
red build is reproduced by running the same command, and no example database is read
or written (nothing a run leaves behind changes the next one). ``explore`` draws fresh
random inputs on every run (each test keeps its own ``max_examples``) and keeps
failures in the local database: run it a few times to hunt, e.g.
``HYPOTHESIS_PROFILE=explore pytest tests/unit -k properties``, then pin what it finds
as an explicit ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
