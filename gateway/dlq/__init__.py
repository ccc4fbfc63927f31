"""Dead letters: read a participant's dead-letter topic, and replay entries into its inbox.

An inbox consumer writes each record it refuses to ``<prefix>dlq.<participant>``
(:mod:`gateway.delivery`): the original key, value and headers, plus ``gw_reason``,
``gw_detail``, ``gw_node`` and ``gw_origin`` (and ``gw_attempts`` where delivery was
tried several times). Here those records become :class:`DeadLetter` entries: where
they are, the routing headers, the reason, and the envelope's size and SHA-256. The
envelope itself never leaves this package, in an entry or in a log line.

A replay produces the chosen entries to the participant's inbox again: the original
key, value and headers without the ``gw_*`` diagnostics, plus ``gw_replayed_from:
<dlq topic>/<partition>/<offset>``. The inbox consumer checks the copy like any new
record, so it is delivered when the cause is gone (the contract version is registered
now, the sender's key is valid again) and dead-lettered once more, with the reason of
the day, when it is not. Freshness still applies: a message issued longer than
``delivery.max_age_s`` ago comes back as ``expired`` (that bound is what keeps the
replay defence window finite, :mod:`gateway.replay`).

Each replay also writes a marker to the dead-letter topic, so the topic itself says
which entries were replayed, whichever node did it: a replay of ``all`` takes only
entries not replayed yet, and each entry counts its replays.

    letters = DeadLetters(participant="socialtreasury", config=config,
                          transport=transport, publisher=publisher, audit=audit)
    page = await letters.page(after=None, limit=50)
    result = await letters.replay(Selection(everything=True), by="socialtreasury")
"""

from gateway.dlq.entries import DeadLetter, Position, dead_letter
from gateway.dlq.topic import MAX_REPLAY, DeadLetters, Page, ReplayResult, Selection

__all__ = [
    "MAX_REPLAY",
    "DeadLetter",
    "DeadLetters",
    "Page",
    "Position",
    "ReplayResult",
    "Selection",
    "dead_letter",
]
