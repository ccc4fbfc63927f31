"""The audit trail: who sent what to whom under which contract, and what happened.

- :mod:`~gateway.audit.events`: the catalogue of event names and fields;
- :mod:`~gateway.audit.log`: the node's append-only, Merkle-tree-organised log;
- :mod:`~gateway.audit.merkle`: RFC 9162 hashing and proofs;
- :mod:`~gateway.audit.verify`, :mod:`~gateway.audit.proofs`,
  :mod:`~gateway.audit.search`: what a security team runs over a log.
"""

from gateway.audit.log import AuditLog, digest

__all__ = ["AuditLog", "digest"]
