"""Limits on a document's shape, each checked in time linear in the document, before any of
GraphQL's own rules (and before authentication) spend more."""

from __future__ import annotations

import time

import pytest
from graphql import ASTValidationRule, get_introspection_query, parse, validate
from graphql.validation import specified_rules

from graph.schema import schema
from graph.validation import document_limits as limits
from graph.validation.documents import validate_within_limits

SCHEMA = schema._schema


def problems(document: str) -> list[str]:
    return [error.message for error in validate_within_limits(SCHEMA, parse(document))]


def doubling(n: int) -> str:
    """`{ viewer { ...F0 } }` where each fragment spreads the next twice: 2^n leaves."""
    chain = " ".join(f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n))
    return f"{{ viewer {{ ...F0 }} }} {chain} fragment F{n} on Viewer {{ subject }}"


async def test_fragments_spread_twice_at_each_level_cost_linear_time() -> None:
    """847 bytes (n=20) held the event loop for seconds, and n=40 never finished."""

    async def run(document: str) -> list[str]:
        result = await schema.execute(document)  # no token: validation runs first anyway
        return [error.message for error in result.errors or []]

    async def timed(document: str) -> float:
        start = time.perf_counter()
        await run(document)
        return time.perf_counter() - start

    # Each run is a new text: nothing comes from the parser's or the validation's cache.
    trivial = min([await timed(f"{{ __typename{' ' * run} }}") for run in range(5)])
    ratios = []
    for n in (20, 40, 60):
        assert (await run(doubling(n)))[0].startswith(f"{2**n + 1} fields selected")
        hostile = min([await timed(doubling(n) + " " * (run + 1)) for run in range(3)])
        ratios.append(hostile / trivial)
    # Loose: 2.5 KB of document against a dozen bytes. Exponential, n=20 was 10^4 times.
    assert max(ratios) < 200, ratios


def test_depth_counts_fields_through_fragments() -> None:
    # Each fragment adds one level: catalogPlugin → installed → catalogPlugin → …
    levels = limits.MAX_DEPTH + 2
    fragments = " ".join(
        f"fragment L{i} on {'CatalogPlugin' if i % 2 == 0 else 'InstalledPlugin'} "
        f"{{ {'installed' if i % 2 == 0 else 'catalogPlugin'} {{ ...L{i + 1} }} }}"
        for i in range(levels)
    )
    last = "InstalledPlugin" if levels % 2 else "CatalogPlugin"
    document = (
        f'{{ catalogPlugin(id: "1") {{ ...L0 }} }} {fragments} fragment L{levels} on {last} '
        "{ __typename }"
    )
    assert problems(document) == [
        f"'anonymous' exceeds maximum operation depth of {limits.MAX_DEPTH}"
    ]


def test_depth_leaves_introspection_to_graphql() -> None:
    assert problems(get_introspection_query(descriptions=True)) == []
    deep = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    assert problems(deep) == ["Maximum introspection depth exceeded"]


def test_aliases_in_a_fragment_count_at_each_spread() -> None:
    half = limits.MAX_ALIASES // 2 + 1
    aliases = " ".join(f"a{i}: subject" for i in range(half))
    document = f"{{ viewer {{ ...A ...B }} }} fragment A on Viewer {{ {aliases} }} " + (
        "fragment B on Viewer { ...A }"
    )
    assert problems(document) == [f"{2 * half} aliases found. Allowed: {limits.MAX_ALIASES}"]


def test_aliases_within_the_limit_pass() -> None:
    aliases = " ".join(f"a{i}: subject" for i in range(limits.MAX_ALIASES // 2))
    document = f"{{ viewer {{ ...A ...A }} }} fragment A on Viewer {{ {aliases} }}"
    assert problems(document) == []


def test_too_many_fragments_are_refused_before_graphql_rules() -> None:
    count = limits.MAX_FRAGMENTS + 1
    # Unused, and misspelt: GraphQL's rules would say so, but are not asked.
    fragments = " ".join(f"fragment F{i} on Viewer {{ subjekt }}" for i in range(count))
    assert problems(f"{{ __typename }} {fragments}") == [
        f"{count} fragments found. Allowed: {limits.MAX_FRAGMENTS}"
    ]


def test_too_many_fragment_spreads_are_refused() -> None:
    count = limits.MAX_FRAGMENT_SPREADS + 1
    document = f"{{ viewer {{ {'...F ' * count} }} }} fragment F on Viewer {{ subject }}"
    assert problems(document) == [
        f"{count} fragment spreads found. Allowed: {limits.MAX_FRAGMENT_SPREADS}"
    ]


def test_too_many_operations_are_refused() -> None:
    count = limits.MAX_OPERATIONS + 1
    document = " ".join(f"query Q{i} {{ __typename }}" for i in range(count))
    assert problems(document) == [f"{count} operations found. Allowed: {limits.MAX_OPERATIONS}"]


def test_fields_are_counted_once_fragments_are_spread() -> None:
    # 8 spreads of a fragment of 300 fields: few tokens, 2400 fields to execute.
    fields = " ".join(["subject"] * 300)
    document = f"{{ viewer {{ {'...F ' * 8} }} }} fragment F on Viewer {{ {fields} }}"
    assert problems(document)[0] == (
        f"{8 * 300 + 1} fields selected once fragments are spread. "
        f"Allowed: {limits.MAX_SELECTED_FIELDS}"
    )


def test_a_fragment_cycle_is_graphql_rules_to_report() -> None:
    document = (
        "{ viewer { ...A } } fragment A on Viewer { subject ...B } "
        "fragment B on Viewer { roles ...A }"
    )
    assert problems(document) == ["Cannot spread fragment 'A' within itself via 'B'."]


def test_an_unknown_fragment_is_graphql_rules_to_report() -> None:
    assert problems("{ viewer { ...Missing } }") == ["Unknown fragment 'Missing'."]


def test_nesting_as_deep_as_the_parser_allows_is_measured() -> None:
    # Inline fragments nest without adding depth; the walk is not recursive.
    depth = 150
    document = "{ viewer { " + "... on Viewer { " * depth + "subject" + " }" * depth + " } }"
    assert problems(document) == []


def test_many_repeated_fields_stop_at_the_comparison_budget() -> None:
    # Within every other limit; GraphQL's own budget is 500 000 comparisons, seconds of work.
    document = "{ " + "viewer { subject } " * 999 + "}"
    assert problems(document) == [
        f"Checking that this document's fields merge takes over {limits.OVERLAP_BUDGET} "
        "comparisons: select a field once per selection set, and spread fewer fragments "
        "side by side"
    ]


def test_fields_repeated_within_the_budget_are_checked_as_graphql_does() -> None:
    assert problems("{ viewer { subject } viewer { subject roles } }") == []
    [conflict] = problems("{ a: viewer { subject } a: __typename }")
    assert conflict.startswith("Fields 'a' conflict")


def test_standard_rules_are_graphqls_with_the_bounded_overlap_rule() -> None:
    assert len(limits.STANDARD_RULES) == len(specified_rules)
    assert limits.BoundedOverlappingFields in limits.STANDARD_RULES


@pytest.mark.parametrize(
    ("rule", "document", "message"),
    [
        (limits.DepthLimit, "{ " + "a { " * 14 + "b" + " }" * 14 + " }", "'anonymous' exceeds"),
        (limits.AliasLimit, "{ " + " ".join(f"a{i}: b" for i in range(31)) + " }", "31 aliases"),
        (limits.SelectionLimit, doubling(11), f"{2**11 + 1} fields selected"),
        (limits.DefinitionLimit, doubling(101), "102 fragments found"),
    ],
    ids=["depth", "aliases", "fields", "fragments"],
)
def test_each_limit_is_a_graphql_validation_rule(
    rule: type[ASTValidationRule], document: str, message: str
) -> None:
    # Measured on the document alone: the fields need not exist in the schema.
    [error] = validate(SCHEMA, parse(document), [rule])
    assert error.message.startswith(message)
