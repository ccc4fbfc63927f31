"""The node's metric families: bounded labels, pointer classes, outcomes, scrape token."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import (
    ConfigError,
    ContractViolation,
    Forbidden,
    GatewayError,
    IdempotencyKeyReused,
    MalformedJSON,
    PayloadTooLarge,
    RateLimited,
    RecipientNotAllowed,
    TransportError,
    UnknownContract,
)
from gateway.instruments import (
    MAX_POINTER_CLASSES,
    OTHER_CLASS,
    NodeMetrics,
    PublishOutcome,
    pointer_class,
    publish_outcome,
    scrape_token,
)

DECLARED = frozenset({"patient", "contacts", "phone", "a~1b", "urgency"})
FAMILIES = (
    "gateway_publishes_total",
    "gateway_deliveries_total",
    "gateway_validation_failures_total",
    "gateway_publish_ack_seconds",
    "gateway_end_to_end_seconds",
    "gateway_inbox_lag",
    "gateway_dead_letters_total",
    "gateway_crypto_operations_total",
)


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", "(root)"),
        ("/urgency", "/urgency"),
        ("/patient/contacts/3/phone", "/patient/contacts/*/phone"),
        ("/patient/contacts/12", "/patient/contacts/*"),
        ("/a~1b", "/a~1b"),  # an escaped declared name stays itself
        ("/patient/ssn-123-45", "(undeclared)"),  # a made-up member: payload, never a label
        ("/Jane Doe", "(undeclared)"),
        ("/patient/٣", "(undeclared)"),  # a non-ASCII digit is not an index
        ("/0/0/0/0/0/0/0/0/0/0", "/*/*/*/*/*/*/*/*/..."),
    ],
)
def test_pointer_classes_hide_indices_and_undeclared_members(pointer: str, expected: str) -> None:
    assert pointer_class(pointer, DECLARED) == expected


def test_contract_labels_are_catalog_ids_or_unknown() -> None:
    metrics = NodeMetrics(known=lambda contract_id: contract_id == "health.patient-referral")
    assert metrics.contract("health.patient-referral") == "health.patient-referral"
    assert metrics.contract("health.patient-referral@1.1.0") == "health.patient-referral"
    assert metrics.contract("made.up") == "unknown"
    assert metrics.contract('x"\n') == "unknown"
    metrics.published("made.up-1", PublishOutcome.REFUSED)
    metrics.published("made.up-2", PublishOutcome.REFUSED)
    assert metrics.publishes.value("unknown", "refused") == 2


def test_pointer_classes_per_contract_are_capped() -> None:
    metrics = NodeMetrics(known=lambda _: True)
    classes = [f"/field{i}" for i in range(MAX_POINTER_CLASSES + 10)]
    metrics.validation_failed("c", classes)
    metrics.validation_failed("c", ["/field0", "/field-new"])

    failures = metrics.validation_failures
    assert failures.value("c", "/field0") == 2  # an early class keeps counting
    assert failures.value("c", OTHER_CLASS) == 11  # the ten over the cap, and a new one
    assert failures.value("c", f"/field{MAX_POINTER_CLASSES}") == 0
    assert failures.value("c", "/field-new") == 0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (ContractViolation("health.patient-referral@1.1.0", []), PublishOutcome.REJECTED),
        (MalformedJSON("x"), PublishOutcome.REJECTED),
        (PayloadTooLarge("x"), PublishOutcome.REJECTED),
        (Forbidden("x"), PublishOutcome.REFUSED),
        (UnknownContract("x"), PublishOutcome.REFUSED),
        (RecipientNotAllowed("x"), PublishOutcome.REFUSED),
        (RateLimited("x", retry_after_s=1), PublishOutcome.THROTTLED),
        (TransportError("x"), PublishOutcome.UNAVAILABLE),
    ],
)
def test_publish_outcomes(error: GatewayError, outcome: PublishOutcome) -> None:
    assert publish_outcome(error) is outcome


def test_every_family_is_exposed_with_help_and_type() -> None:
    text = NodeMetrics().registry.render()
    for family in FAMILIES:
        assert f"# HELP {family} " in text
        assert f"# TYPE {family} " in text
    assert "# TYPE gateway_publish_ack_seconds histogram" in text
    assert "# TYPE gateway_inbox_lag gauge" in text


def test_the_scrape_token_is_read_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.token"
    assert scrape_token(None) is None
    path.write_text("s3cr3t-scrape-token-0123\n")
    assert scrape_token(path) == "s3cr3t-scrape-token-0123"


@pytest.mark.parametrize("content", [b"", b"short", b"two words of a token here", b"\xff" * 20])
def test_a_bad_scrape_token_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "metrics.token"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"http\.metrics_token_file"):
        scrape_token(path)


def test_a_missing_scrape_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        scrape_token(tmp_path / "absent")


def test_a_reused_idempotency_key_counts_as_a_rejected_request() -> None:
    assert publish_outcome(IdempotencyKeyReused("x")) is PublishOutcome.REJECTED
