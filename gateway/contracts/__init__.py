"""Data contracts: versioned JSON Schemas with their producers and consumers."""

from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.document import parse_contract
from gateway.contracts.files import load_catalog
from gateway.contracts.model import ContractVersion, Version
from gateway.contracts.validation import PayloadValidator, pointer

__all__ = [
    "ContractCatalog",
    "ContractVersion",
    "PayloadValidator",
    "Version",
    "load_catalog",
    "parse_contract",
    "pointer",
]
