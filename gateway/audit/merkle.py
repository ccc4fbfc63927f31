"""Merkle tree hashing and proofs as RFC 9162 (Certificate Transparency 2.0) defines them.

Leaves are hashed ``SHA-256(0x00 || leaf)`` and interior nodes
``SHA-256(0x01 || left || right)``; the tree over ``n`` leaves splits at the
largest power of two below ``n`` (RFC 9162 section 2.1.1). Two shapes of
state serve two needs:

- :class:`Frontier` keeps only the roots of the perfect subtrees covering the
  leaves so far (at most 64 hashes), enough to append and to compute the root.
  Writers and verifiers stream through a log with it in constant memory.
- :class:`LeafHashes` holds the leaf hashes of a range plus the frontier that
  covers everything before it, enough to build inclusion and consistency
  proofs for the retained range after older segments were pruned.

    >>> tree = Frontier()
    >>> for record in (b"a", b"b", b"c"):
    ...     tree.append(leaf_hash(record))
    >>> hashes = LeafHashes(Frontier(), [leaf_hash(r) for r in (b"a", b"b", b"c")])
    >>> proof = hashes.inclusion_proof(1, 3)
    >>> verify_inclusion(leaf_hash(b"b"), 1, 3, proof, tree.root())
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Pruned(LookupError):
    """A proof needs hashes of records that retention has removed."""


@dataclass(slots=True)
class Frontier:
    """Roots of the perfect subtrees that cover leaves ``[0, size)``, left to right."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a tree of {self.size} leaves has {self.size.bit_count()} subtrees")

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        nodes = self.hashes
        nodes.append(leaf)
        merges = (self.size ^ (self.size + 1)).bit_length() - 1  # trailing ones of size
        for _ in range(merges):
            right = nodes.pop()
            nodes[-1] = node_hash(nodes[-1], right)
        self.size += 1

    def root(self) -> bytes:
        nodes = self.hashes
        if not nodes:
            return EMPTY_ROOT
        root = nodes[-1]
        for left in reversed(nodes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))

    def intervals(self) -> list[tuple[int, int]]:
        """The ``[start, end)`` leaf range each subtree covers."""
        spans, start = [], 0
        for bit in reversed(range(self.size.bit_length())):
            if self.size >> bit & 1:
                spans.append((start, start + (1 << bit)))
                start += 1 << bit
        return spans


class LeafHashes:
    """Leaf hashes ``[frontier.size, frontier.size + len(leaves))`` and the frontier before."""

    def __init__(self, frontier: Frontier, leaves: Sequence[bytes]) -> None:
        self._start = frontier.size
        self._pruned = dict(zip(frontier.intervals(), frontier.hashes, strict=True))
        self._leaves = list(leaves)

    @property
    def start(self) -> int:
        return self._start

    @property
    def size(self) -> int:
        return self._start + len(self._leaves)

    def root(self, size: int) -> bytes:
        """The root of the tree of the first ``size`` leaves."""
        self._check_size(size)
        return self._subtree(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 2.1.3.1: the audit path of leaf ``index`` in the tree of ``size`` leaves."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index - lo < k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 2.1.4.1: proof that the tree of ``old`` leaves is a prefix of ``new``."""
        self._check_size(new)
        if not 0 < old <= new:
            raise ValueError(f"no consistency proof from {old} to {new} leaves")
        path: list[bytes] = []
        lo, hi, m, complete = 0, new, old, True
        while True:
            n = hi - lo
            if m == n:
                if not complete:
                    path.append(self._subtree(lo, hi))
                break
            k = _split(n)
            if m <= k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        path.reverse()
        return path

    def _check_size(self, size: int) -> None:
        if size > self.size:
            raise ValueError(f"the log holds leaves up to {self.size}, not {size}")

    def _subtree(self, lo: int, hi: int) -> bytes:
        if lo >= self._start:
            return _mth(self._leaves, lo - self._start, hi - self._start)
        exact = self._pruned.get((lo, hi))
        if exact is not None:
            return exact
        if any(a <= lo and hi <= b for a, b in self._pruned):
            # Inside one pruned subtree: only its root is left. A range spanning several
            # (the root of the first ``start`` leaves) is built from them below.
            raise Pruned(f"leaves {lo}..{hi - 1} were removed by retention")
        k = _split(hi - lo)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """RFC 9162 2.1.1 MTH over ``leaves[lo:hi]``, iteratively (no deep recursion)."""
    if hi - lo == 1:
        return leaves[lo]
    frontier = Frontier()
    for i in range(lo, hi):
        frontier.append(leaves[i])
    return frontier.root()


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: is the leaf hash at ``index`` in the tree with this root?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree of ``old_size`` leaves a prefix of the new one?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        proof.insert(0, old_root)
    if not proof:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
