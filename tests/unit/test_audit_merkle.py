"""The production Merkle code against an independent RFC 9162 reference.

The reference below is written from the RFC's definitions, over leaf *data*
(not leaf hashes), recursively, and shares nothing with
:mod:`gateway.audit.merkle` but the SHA-256 function: MTH (section 2.1.1),
PATH (2.1.3.1), PROOF/SUBPROOF (2.1.4.1) and the two verification algorithms
(2.1.3.2, 2.1.4.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from functools import cache

import pytest

from gateway.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    LeafHashes,
    Pruned,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

ROOT_SIZES = 71
PROOF_SIZES = 41
TAMPER_SIZES = 20
PRUNED_SIZES = 25
DATA = tuple(f"record {i}".encode() for i in range(ROOT_SIZES))

# -- the reference (RFC 9162 section 2.1) -----------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over DATA: the empty hash, a leaf, or a node of two subtrees."""
    n = hi - lo
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + DATA[lo])
    k = _k(n)
    return _sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))


def path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]): the audit path of leaf lo + m."""
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, lo, lo + k), mth(lo + k, hi)]
    return [*path(m - k, lo + k, hi), mth(lo, lo + k)]


def subproof(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b)."""
    n = hi - lo
    if m == n:
        return [] if whole else [mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, lo, lo + k, whole), mth(lo + k, hi)]
    return [*subproof(m - k, lo + k, hi, False), mth(lo, lo + k)]


def proof(m: int, n: int) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    return subproof(m, 0, n, True)


def _lsb(x: int) -> bool:
    return x % 2 == 1


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def reference_verify_inclusion(
    leaf: bytes, index: int, size: int, audit_path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2, step by step."""
    if index >= size:  # 1
        return False
    fn, sn = index, size - 1  # 2
    r = leaf  # 3
    for p in audit_path:  # 4
        if sn == 0:  # 4a
            return False
        if _lsb(fn) or fn == sn:  # 4b
            r = _node(p, r)
            if not _lsb(fn):
                while not (_lsb(fn) or fn == 0):
                    fn, sn = fn // 2, sn // 2
        else:
            r = _node(r, p)
        fn, sn = fn // 2, sn // 2  # 4c
    return sn == 0 and r == root  # 5


def reference_verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, consistency: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2, step by step (defined for 0 < first < second)."""
    if not consistency:  # 1
        return False
    steps = list(consistency)
    if first & (first - 1) == 0:  # 2: first is an exact power of two
        steps = [first_hash, *steps]
    fn, sn = first - 1, second - 1  # 3
    while _lsb(fn):  # 4
        fn, sn = fn // 2, sn // 2
    fr = sr = steps[0]  # 5
    for c in steps[1:]:  # 6
        if sn == 0:  # 6a
            return False
        if _lsb(fn) or fn == sn:  # 6b
            fr, sr = _node(c, fr), _node(c, sr)
            if not _lsb(fn):
                while not (_lsb(fn) or fn == 0):
                    fn, sn = fn // 2, sn // 2
        else:
            sr = _node(sr, c)
        fn, sn = fn // 2, sn // 2  # 6c
    return fr == first_hash and sr == second_hash and sn == 0  # 7


# -- helpers ---------------------------------------------------------------------------


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(d) for d in DATA[:n]]


def frontier(n: int) -> Frontier:
    tree = Frontier()
    for leaf in leaves(n):
        tree.append(leaf)
    return tree


FULL = LeafHashes(Frontier(), leaves(ROOT_SIZES))


def pairs(limit: int, *, lowest_old: int = 1) -> Iterator[tuple[int, int]]:
    for n in range(1, limit):
        for m in range(lowest_old, n + 1):
            yield m, n


def flipped(proof_path: list[bytes], at: int) -> list[bytes]:
    changed = bytearray(proof_path[at])
    changed[at % len(changed)] ^= 0x01
    return [*proof_path[:at], bytes(changed), *proof_path[at + 1 :]]


def mangled(proof_path: list[bytes]) -> Iterator[list[bytes]]:
    """Every way the tests damage a path: a flipped bit in each element, a hash dropped
    from either end, one added at either end."""
    for at in range(len(proof_path)):
        yield flipped(proof_path, at)
    if proof_path:
        yield proof_path[:-1]
        yield proof_path[1:]
    yield [*proof_path, mth(0, 1)]
    yield [mth(0, 1), *proof_path]


# -- known answers and the reference itself --------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    empty = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert empty == EMPTY_ROOT
    assert Frontier().root() == empty
    assert LeafHashes(Frontier(), []).root(0) == empty
    assert mth(0, 0) == empty


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"") == _sha256(b"\x00")
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    two = LeafHashes(Frontier(), [leaf_hash(b"a"), leaf_hash(b"b")]).root(2)
    assert two == _sha256(b"\x01" + _sha256(b"\x00a") + _sha256(b"\x00b"))


def test_reference_verifiers_accept_the_reference_proofs() -> None:
    """Guards the reference: its proofs check out under its own verifiers."""
    for m, n in pairs(PROOF_SIZES):
        assert reference_verify_inclusion(mth(m - 1, m), m - 1, n, path(m - 1, 0, n), mth(0, n))
        if m < n:
            assert reference_verify_consistency(m, n, mth(0, m), mth(0, n), proof(m, n))


# -- roots ---------------------------------------------------------------------------


def test_frontier_root_matches_the_reference_for_every_size() -> None:
    tree = Frontier()
    for n in range(ROOT_SIZES):
        assert tree.size == n
        assert tree.root() == mth(0, n), n
        assert tree.hashes == [mth(lo, hi) for lo, hi in tree.intervals()], n
        tree.append(leaf_hash(DATA[n]))


def test_leaf_hashes_root_matches_the_reference_for_every_size() -> None:
    for n in range(ROOT_SIZES):
        assert FULL.root(n) == mth(0, n), n
    with pytest.raises(ValueError, match="leaves up to"):
        FULL.root(ROOT_SIZES + 1)


def test_frontier_copy_is_independent() -> None:
    tree = frontier(5)
    copy = tree.copy()
    copy.append(leaf_hash(DATA[5]))
    assert (tree.size, tree.root()) == (5, mth(0, 5))
    assert (copy.size, copy.root()) == (6, mth(0, 6))


def test_frontier_refuses_a_hash_count_that_does_not_fit_its_size() -> None:
    with pytest.raises(ValueError, match="subtrees"):
        Frontier(3, [mth(0, 2)])
    with pytest.raises(ValueError, match="subtrees"):
        Frontier(-1, [])


# -- proofs built by production equal the reference ----------------------------------


def test_inclusion_proofs_equal_the_reference_and_verify() -> None:
    for n in range(1, PROOF_SIZES):
        for i in range(n):
            built = FULL.inclusion_proof(i, n)
            assert built == path(i, 0, n), (i, n)
            assert reference_verify_inclusion(mth(i, i + 1), i, n, built, mth(0, n)), (i, n)
            assert verify_inclusion(mth(i, i + 1), i, n, built, mth(0, n)), (i, n)


def test_consistency_proofs_equal_the_reference_and_verify() -> None:
    for m, n in pairs(PROOF_SIZES):
        built = FULL.consistency_proof(m, n)
        assert built == proof(m, n), (m, n)
        assert verify_consistency(m, n, mth(0, m), mth(0, n), built), (m, n)
        if m < n:  # the RFC algorithm is not defined for m == n (an empty proof)
            assert reference_verify_consistency(m, n, mth(0, m), mth(0, n), built), (m, n)


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 0)])
def test_inclusion_proof_refuses_a_leaf_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        FULL.inclusion_proof(index, size)


@pytest.mark.parametrize(("old", "new"), [(0, 3), (4, 3), (-1, 3)])
def test_consistency_proof_refuses_sizes_out_of_order(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        FULL.consistency_proof(old, new)


def test_proofs_refuse_a_size_beyond_the_log() -> None:
    with pytest.raises(ValueError, match="leaves up to"):
        FULL.inclusion_proof(0, ROOT_SIZES + 1)
    with pytest.raises(ValueError, match="leaves up to"):
        FULL.consistency_proof(1, ROOT_SIZES + 1)


# -- production verifiers: accept what is right, reject what is not -----------------


def test_verify_inclusion_rejects_tampered_proofs() -> None:
    for n in range(1, TAMPER_SIZES):
        root = mth(0, n)
        for i in range(n):
            leaf, good = mth(i, i + 1), path(i, 0, n)
            assert verify_inclusion(leaf, i, n, good, root)
            for other in {i - 1, i + 1, n, -1} - {i}:  # wrong index
                assert not verify_inclusion(leaf, other, n, good, root), (i, other, n)
            for bad in mangled(good):
                assert not verify_inclusion(leaf, i, n, bad, root), (i, n, bad)
            assert not verify_inclusion(leaf, i, n, good, mth(0, n + 1)), (i, n)
            assert not verify_inclusion(mth(n, n + 1), i, n, good, root), (i, n)
            for size in {n - 1, n + 1} - {i, 0}:  # a wrong size, with that size's root
                if size > i:
                    assert not verify_inclusion(leaf, i, size, good, mth(0, size)), (i, size)


def test_verify_consistency_rejects_tampered_proofs() -> None:
    for m, n in pairs(TAMPER_SIZES):
        old, new, good = mth(0, m), mth(0, n), proof(m, n)
        assert verify_consistency(m, n, old, new, good)
        for bad in mangled(good):
            assert not verify_consistency(m, n, old, new, bad), (m, n, bad)
        assert not verify_consistency(m, n, mth(0, m + 1), new, good), (m, n)
        assert not verify_consistency(m, n, old, mth(0, n + 1), good), (m, n)
        if m < n:
            assert not verify_consistency(m, n, new, old, good), (m, n)  # roots swapped
            assert not verify_consistency(n, m, new, old, good), (m, n)  # old_size > new_size
        for m2, n2 in {(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)} - {(m, n)}:
            if 0 < m2 <= n2 and proof(m2, n2) != good:
                assert not verify_consistency(m2, n2, mth(0, m2), mth(0, n2), good), (m2, n2)


def test_verify_consistency_from_an_empty_tree_is_refused() -> None:
    """RFC 9162 defines consistency proofs for 0 < first only; size 0 proves nothing."""
    for n in range(1, 6):
        assert not verify_consistency(0, n, EMPTY_ROOT, mth(0, n), [])
        assert not verify_consistency(0, n, EMPTY_ROOT, mth(0, n), [mth(0, n)])


def test_verify_consistency_of_equal_sizes_needs_equal_roots_and_no_proof() -> None:
    for n in range(1, 10):
        assert verify_consistency(n, n, mth(0, n), mth(0, n), [])
        assert not verify_consistency(n, n, mth(0, n), mth(0, n), [mth(0, n)])
        assert not verify_consistency(n, n, mth(0, n), mth(0, n + 1), [])


# -- after retention: a frontier stands in for the pruned prefix ---------------------


def pruned_cases() -> Iterator[tuple[int, int, LeafHashes]]:
    """(start, size, hashes) for logs whose first ``start`` leaves are gone."""
    for n in range(1, PRUNED_SIZES):
        for s in range(n + 1):
            yield s, n, LeafHashes(frontier(s), leaves(n)[s:])


def test_pruned_log_builds_the_same_proofs_for_retained_leaves() -> None:
    for s, n, kept in pruned_cases():
        assert (kept.start, kept.size) == (s, n)
        for size in range(s, n + 1):
            assert kept.root(size) == mth(0, size), (s, size)
        for i in range(s, n):
            assert kept.inclusion_proof(i, n) == path(i, 0, n), (s, i, n)
        for m in range(max(s, 1), n + 1):
            assert kept.consistency_proof(m, n) == proof(m, n), (s, m, n)


def _pruned_or_equal(expected: object, build: Callable[..., object], *args: int) -> bool:
    """A proof touching pruned leaves either fails with Pruned or is still right."""
    try:
        return build(*args) == expected
    except Pruned:
        return True


def test_pruned_log_never_builds_a_wrong_proof_for_removed_leaves() -> None:
    for s, n, kept in pruned_cases():
        for i in range(s):
            assert _pruned_or_equal(path(i, 0, n), kept.inclusion_proof, i, n), (s, i)
        for m in range(1, s):
            assert _pruned_or_equal(proof(m, n), kept.consistency_proof, m, n), (s, m)
        for size in range(s):
            assert _pruned_or_equal(mth(0, size), kept.root, size), (s, size)


def test_pruned_log_still_knows_the_root_at_its_checkpoint() -> None:
    """The root of the pruned prefix is the checkpoint head's root, whatever its size."""
    for s in (3, 5, 7, 13, 31):
        kept = LeafHashes(frontier(s), leaves(s + 2)[s:])
        assert kept.root(s) == mth(0, s)
        assert kept.consistency_proof(s, s + 2) == proof(s, s + 2)


@pytest.mark.parametrize(
    ("start", "index", "size"), [(4, 0, 8), (8, 5, 12), (13, 11, 20), (13, 0, 13)]
)
def test_pruned_log_refuses_a_proof_for_a_removed_leaf(start: int, index: int, size: int) -> None:
    kept = LeafHashes(frontier(start), leaves(size)[start:])
    with pytest.raises(Pruned, match="removed by retention"):
        kept.inclusion_proof(index, size)


def test_pruned_log_refuses_a_consistency_proof_from_a_removed_size() -> None:
    kept = LeafHashes(frontier(8), leaves(20)[8:])
    with pytest.raises(Pruned, match="removed by retention"):
        kept.consistency_proof(3, 20)
