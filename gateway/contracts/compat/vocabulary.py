"""The JSON Schema 2020-12 keywords the differ groups, and why."""

from __future__ import annotations

ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "$anchor",
        "$dynamicAnchor",
        "$vocabulary",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
    }
)
LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
DEFAULT_BOUND = {"minLength": 0, "minItems": 0, "minProperties": 0, "minContains": 1}
"""Bounds that apply when absent: stating one at its default changes nothing, and
minContains 0 accepts arrays without a match, which the default 1 rejects."""
OPAQUE = (
    "if",
    "then",
    "else",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
)
OBJECT_MODEL = ("properties", "patternProperties", "additionalProperties")
ARRAY_MODEL = ("prefixItems", "items")
IN_PLACE = ("allOf", "anyOf", "oneOf", "if", "then", "else", "dependentSchemas", "$dynamicRef")
EVALUATORS = {
    "unevaluatedProperties": (*OBJECT_MODEL, *IN_PLACE),
    "unevaluatedItems": (*ARRAY_MODEL, "contains", *IN_PLACE),
}
"""What decides which members an unevaluated* keyword applies to."""
ADJACENT = (
    frozenset(OBJECT_MODEL),
    frozenset(ARRAY_MODEL),
    frozenset({"contains", "minContains", "maxContains"}),
    frozenset({"if", "then", "else"}),
)
"""Keywords that read their neighbours in the same schema object: splitting one
group between a $ref target and the $ref's siblings changes what they mean."""
