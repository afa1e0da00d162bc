"""Limits on a document's size and shape, each checked in time linear in the document.

Validation runs before authentication, so whatever it costs, anyone may make the server spend.
Strawberry's depth and alias limiters expand a fragment anew at every spread: a chain of
fragments each spreading the next twice cost 2^n, and an anonymous document of 847 bytes held
the event loop for seconds. Here every fragment is measured once and its measure reused
wherever it is spread. The measures (`DocumentMeasures`) are taken before GraphQL's own rules
run, and a document over a limit is refused without running them (`limit_errors`).

GraphQL's OverlappingFieldsCanBeMerged compares fields sharing a response name pair by pair,
quadratic in the fields of a selection: `BoundedOverlappingFields` gives it a budget of
comparisons that keeps it to a few milliseconds.

Example:
    errors = limit_errors(schema, parse(document))  # [] when within every limit
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    TypeInfo,
    ValidationContext,
)
from graphql.validation import OverlappingFieldsCanBeMergedRule, specified_rules
from graphql.validation.validate import ValidationAbortedError

MAX_DEPTH = 12
MAX_TOKENS = 4000
# Lexing a long string or comment costs per character, and one token can be the whole body.
MAX_DOCUMENT_CHARACTERS = 64 * 1024
MAX_ALIASES = 30
# Each operation costs GraphQL's variable rules a walk of its own (800 cost 130 ms); one
# request runs one operation.
MAX_OPERATIONS = 20
MAX_FRAGMENTS = 100
MAX_FRAGMENT_SPREADS = 200
# Fields once every fragment is spread where it is used: what execution and the resolvers
# that read their selection (strawberry's `selected_fields` expands every spread) walk.
MAX_SELECTED_FIELDS = 2000
# Units of graphql-core's OverlappingFieldsCanBeMerged budget (about one per comparison of two
# fields); 3000 cost 2 to 7 ms here, and GraphiQL's introspection query spends none.
OVERLAP_BUDGET = 3000


@dataclass(frozen=True)
class Measure:
    """What a selection set holds once the fragments it spreads are spread."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0

    def __add__(self, other: Measure) -> Measure:
        """Two parts of one selection set: the deeper depth, the sum of the rest."""
        return Measure(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.fields + other.fields,
        )


NOTHING = Measure()
_LEAF = Measure(fields=1)
_ALIASED_LEAF = Measure(aliases=1, fields=1)


@dataclass
class _Open:
    """A selection set being measured: its owner (a field, an inline fragment or the
    definition) and what its selections measured so far."""

    owner: SelectionNode | None
    selections: Iterator[SelectionNode]
    measure: Measure = NOTHING

    def closed(self) -> Measure:
        """What the owner adds to the selection set that holds it."""
        if not isinstance(self.owner, FieldNode):
            return self.measure
        # As strawberry's limiter counted depth: introspection fields (__schema, __type)
        # are left to graphql-core's MaxIntrospectionDepthRule.
        introspection = self.owner.name.value.startswith("__")
        return Measure(
            0 if introspection or self.owner.selection_set is None else self.measure.depth + 1,
            self.measure.aliases + (self.owner.alias is not None),
            self.measure.fields + 1,
        )


def _selections(node: SelectionNode | ExecutableDefinitionNode) -> Iterator[SelectionNode]:
    selection_set: SelectionSetNode | None = getattr(node, "selection_set", None)
    return iter(selection_set.selections if selection_set is not None else ())


def measure_of(definition: ExecutableDefinitionNode, fragments: Mapping[str, Measure]) -> Measure:
    """`definition`'s measure, each spread taken from `fragments` (absent: nothing).

    Iterative: nesting is as deep as the parser allows, which a recursion could exceed.
    """
    stack = [_Open(None, _selections(definition))]
    while True:
        top = stack[-1]
        selection = next(top.selections, None)
        if selection is None:
            stack.pop()
            if not stack:
                return top.measure
            stack[-1].measure += top.closed()
        elif isinstance(selection, FragmentSpreadNode):
            top.measure += fragments.get(selection.name.value, NOTHING)
        elif isinstance(selection, FieldNode) and selection.selection_set is None:
            top.measure += _ALIASED_LEAF if selection.alias else _LEAF
        else:
            stack.append(_Open(selection, _selections(selection)))


def spreads_of(definition: ExecutableDefinitionNode) -> list[str]:
    """The names of the fragments `definition` spreads, once per spread."""
    names: list[str] = []
    stack = [_selections(definition)]
    while stack:
        selection = next(stack[-1], None)
        if selection is None:
            stack.pop()
        elif isinstance(selection, FragmentSpreadNode):
            names.append(selection.name.value)
        else:
            stack.append(_selections(selection))
    return names


def dependency_order(spreads: Mapping[str, Sequence[str]]) -> list[str]:
    """Fragment names, each after the fragments it spreads; unknown names and the spreads
    that close a cycle are left out (GraphQL's own rules report those)."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False while being visited, True once placed
    for start in spreads:
        if start in state:
            continue
        state[start] = False
        stack = [(start, iter(spreads[start]))]
        while stack:
            name, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                state[name] = True
                order.append(name)
            elif child in spreads and child not in state:
                state[child] = False
                stack.append((child, iter(spreads[child])))
    return order


@dataclass
class DocumentMeasures:
    """A document's counts and, per operation, its measure with every fragment spread."""

    operation_count: int
    fragment_count: int
    spread_count: int = 0
    operations: list[tuple[OperationDefinitionNode, Measure]] = field(default_factory=list)

    @classmethod
    def of(cls, document: DocumentNode) -> DocumentMeasures:
        definitions = document.definitions
        fragments = [d for d in definitions if isinstance(d, FragmentDefinitionNode)]
        operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
        measures = cls(len(operations), len(fragments))
        if len(operations) > MAX_OPERATIONS or len(fragments) > MAX_FRAGMENTS:
            return measures  # refused whatever else it holds: measure no more
        spreads = {fragment.name.value: spreads_of(fragment) for fragment in fragments}
        measures.spread_count = sum(map(len, spreads.values())) + sum(
            len(spreads_of(operation)) for operation in operations
        )
        if measures.spread_count > MAX_FRAGMENT_SPREADS:
            return measures
        by_name = {fragment.name.value: fragment for fragment in fragments}
        known: dict[str, Measure] = {}
        for name in dependency_order(spreads):
            known[name] = measure_of(by_name[name], known)
        measures.operations = [(op, measure_of(op, known)) for op in operations]
        return measures


# The rules of one validation measure the same document: measured once, for all of them.
_last_measured: tuple[DocumentNode | None, DocumentMeasures | None] = (None, None)


def measures(document: DocumentNode) -> DocumentMeasures:
    global _last_measured
    known_document, known = _last_measured
    if known_document is not document or known is None:
        known = DocumentMeasures.of(document)
        _last_measured = (document, known)
    return known


class LimitRule(ASTValidationRule):
    """A limit checked on the document's measures when the rule is made; it visits nothing."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        for message, node in self.problems(measures(context.document)):
            context.report_error(GraphQLError(message, node))

    def problems(self, found: DocumentMeasures) -> Iterator[tuple[str, Any]]:
        raise NotImplementedError


class DefinitionLimit(LimitRule):
    """Operations, fragments and fragment spreads, as written."""

    def problems(self, found: DocumentMeasures) -> Iterator[tuple[str, Any]]:
        if found.operation_count > MAX_OPERATIONS:
            yield f"{found.operation_count} operations found. Allowed: {MAX_OPERATIONS}", None
        elif found.fragment_count > MAX_FRAGMENTS:
            yield f"{found.fragment_count} fragments found. Allowed: {MAX_FRAGMENTS}", None
        elif found.spread_count > MAX_FRAGMENT_SPREADS:
            yield (
                f"{found.spread_count} fragment spreads found. Allowed: {MAX_FRAGMENT_SPREADS}",
                None,
            )


class DepthLimit(LimitRule):
    """Nested fields with selections, per operation (introspection fields not counted)."""

    def problems(self, found: DocumentMeasures) -> Iterator[tuple[str, Any]]:
        for operation, measure in found.operations:
            if measure.depth > MAX_DEPTH:
                name = operation.name.value if operation.name else "anonymous"
                yield f"'{name}' exceeds maximum operation depth of {MAX_DEPTH}", operation


class AliasLimit(LimitRule):
    """Aliases in the document's operations, a fragment's counted at each spread."""

    def problems(self, found: DocumentMeasures) -> Iterator[tuple[str, Any]]:
        aliases = sum(measure.aliases for _, measure in found.operations)
        if aliases > MAX_ALIASES:
            yield f"{aliases} aliases found. Allowed: {MAX_ALIASES}", None


class SelectionLimit(LimitRule):
    """Fields in the document's operations, a fragment's counted at each spread."""

    def problems(self, found: DocumentMeasures) -> Iterator[tuple[str, Any]]:
        fields = sum(measure.fields for _, measure in found.operations)
        if fields > MAX_SELECTED_FIELDS:
            yield (
                f"{fields} fields selected once fragments are spread. "
                f"Allowed: {MAX_SELECTED_FIELDS}",
                None,
            )


LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (
    DefinitionLimit,
    DepthLimit,
    AliasLimit,
    SelectionLimit,
)


def limit_errors(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    """What `document` breaks of our limits; run before GraphQL's rules, which are not
    run on a document over a limit."""
    errors: list[GraphQLError] = []
    context = ValidationContext(schema, document, TypeInfo(schema), errors.append)
    for rule in LIMIT_RULES:
        rule(context)
    return errors


class BoundedOverlappingFields(OverlappingFieldsCanBeMergedRule):
    """GraphQL's rule, within `OVERLAP_BUDGET` comparisons (the default, 500 000, is
    seconds of work)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = OVERLAP_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            raise ValidationAbortedError(
                f"Checking that this document's fields merge takes over {OVERLAP_BUDGET} "
                "comparisons: select a field once per selection set, and spread fewer "
                "fragments side by side"
            ) from None


STANDARD_RULES: tuple[type[ASTValidationRule], ...] = tuple(
    BoundedOverlappingFields if rule is OverlappingFieldsCanBeMergedRule else rule
    for rule in specified_rules
)
