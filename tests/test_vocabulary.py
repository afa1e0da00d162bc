"""One name per concept: each enum is defined once, in the runtime, and GraphQL exports it as it
is; statuses are spelled through their enums; the names that used to collide stay apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from graphql import GraphQLEnumType

from graph.schema import schema
from runtime.catalog.installs import PluginStatus
from runtime.sdk.outcomes import DeliveryStatus

ROOT = Path(__file__).resolve().parent.parent
# Where the vocabulary applies; models/ keeps the text, as it imports nothing of ours.
LAYERS = ("runtime", "graph")


def modules(*layers: str) -> Iterator[Path]:
    for layer in layers:
        yield from sorted((ROOT / layer).rglob("*.py"))


def class_definitions(name: str) -> list[str]:
    return [
        str(path.relative_to(ROOT))
        for path in modules(*LAYERS, "models")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name == name
    ]


def test_every_graphql_enum_is_the_runtimes_own() -> None:
    exported = {
        name: definition.wrapped_cls
        for name, graphql_type in schema._schema.type_map.items()
        if isinstance(graphql_type, GraphQLEnumType) and not name.startswith("__")
        for definition in [graphql_type.extensions["strawberry-definition"]]
    }
    assert set(exported) == {
        "CatalogSort",
        "DeliveryStatus",
        "LogLevel",
        "PluginStatus",
        "RepositoryType",
    }
    assert {name: cls.__module__.split(".")[0] for name, cls in exported.items()} == dict.fromkeys(
        exported, "runtime"
    )
    for name in exported:
        assert len(class_definitions(name)) == 1, class_definitions(name)


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def test_statuses_are_spelled_through_their_enums() -> None:
    statuses = {member.value for member in (*DeliveryStatus, *PluginStatus)}
    bare = []
    for path in modules(*LAYERS):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = docstrings(tree)
        enums = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.name in {"DeliveryStatus", "PluginStatus"}
        ]
        own = {id(inner) for enum in enums for inner in ast.walk(enum)}
        bare += [
            f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and node.value in statuses
            and id(node) not in skipped | own
        ]
    assert bare == [], "use DeliveryStatus or PluginStatus"


def test_the_names_that_collided_stay_apart() -> None:
    # The SDK's Event is what plugins receive; the stored row is EventRow.
    assert [path for path in class_definitions("Event") if path.startswith("models")] == []
    # CatalogQuery is the root query type; the runtime's catalog search is CatalogSearch.
    assert class_definitions("CatalogQuery") == ["graph/queries.py"]
    assert class_definitions("CatalogSearch") == ["runtime/catalog/browse.py"]
