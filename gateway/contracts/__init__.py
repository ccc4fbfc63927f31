"""Data contracts: versioned JSON Schemas with their producers and consumers."""

from gateway.contracts.catalog import ContractCatalog, load_catalog, parse_contract
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
