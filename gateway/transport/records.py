"""Records and the protocols at the transport seam."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Partition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def where(self) -> Partition:
        return Partition(self.topic, self.partition)

    def header(self, name: str) -> str | None:
        """The first header of that name as text; None when absent or not UTF-8."""
        for key, value in self.headers:
            if key == name:
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    return None
        return None


class Publisher(Protocol):
    async def publish(self, records: Sequence[OutboundRecord]) -> None:
        """Return once the broker acknowledged every record (acks=all).

        Raises :class:`gateway.errors.TransportError` when any record was not
        acknowledged within the publish timeout.
        """
        ...


RevokedCallback = Callable[[set[Partition]], None]


class RecordSource(Protocol):
    """One participant's inbox, read as a member of its consumer group."""

    async def start(self, on_revoked: RevokedCallback) -> None: ...

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]: ...

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit ``offset`` (the next one to read) for each partition."""
        ...

    async def lag(self) -> int:
        """Records in the assigned partitions not yet read, as of the last fetch."""
        ...

    async def stop(self) -> None: ...


class TopicReader(Protocol):
    """A whole topic read from its beginning, outside any consumer group: every
    reader sees every record (the registry, which each node follows)."""

    async def start(self) -> None: ...

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]: ...

    async def lag(self) -> int:
        """Records between this reader's position and the topic's current end."""
        ...

    async def ends(self) -> dict[int, int]:
        """The current end (the next offset to be written) of each partition: a snapshot
        to read up to while the topic keeps growing."""
        ...

    async def reached(self, ends: Mapping[int, int]) -> bool:
        """Whether this reader's position is at or past ``ends`` in every partition."""
        ...

    async def stop(self) -> None: ...


class ManagedPublisher(Publisher, Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Transport(Protocol):
    """Everything a node needs from the broker."""

    def publisher(self) -> ManagedPublisher: ...

    def source(self, *, topic: str, group_id: str) -> RecordSource: ...

    def reader(self, topic: str) -> TopicReader: ...

    async def ensure_topics(self, topics: Sequence[str], *, compacted: Sequence[str] = ()) -> None:
        """Create missing topics; ``compacted`` ones with one partition (a total order)
        and ``cleanup.policy=compact`` (the newest record per key is kept)."""
        ...
