"""Who may call what: every operation states its role, and a missing token is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
    is_leaf_type,
)
from graphql.language import print_ast
from graphql.pyutils import Undefined
from graphql.utilities import ast_from_value

from graph.context import Services
from graph.schema import schema
from runtime.core.auth import Role
from tests.graph.conftest import Catalog, Execute, ExecuteWithHeader

USER = "user"  # users and admins: browsing and rating
ADMIN = "admin"
ANYONE = "anyone"  # any valid token
PLATFORM = "platform"  # the core platform reporting events

ROLE_TABLE = {
    "Query.catalog": USER,
    "Query.catalogPlugin": USER,
    "Query.repositories": USER,
    "Query.installedPlugins": USER,
    "Query.installedPlugin": USER,
    "Query.viewer": ANYONE,
    "Mutation.ratePlugin": USER,
    "Mutation.addRepository": ADMIN,
    "Mutation.removeRepository": ADMIN,
    "Mutation.syncRepository": ADMIN,
    "Mutation.installPlugin": ADMIN,
    "Mutation.updatePlugin": ADMIN,
    "Mutation.enablePlugin": ADMIN,
    "Mutation.disablePlugin": ADMIN,
    "Mutation.uninstallPlugin": ADMIN,
    "Mutation.upgradePlugin": ADMIN,
    "Mutation.rollbackPlugin": ADMIN,
    "Query.events": ADMIN,
    "Query.event": ADMIN,
    "Query.deliveries": ADMIN,
    "Query.pluginLogs": ADMIN,
    "Query.uiExtensions": ANYONE,
    "Mutation.emitEvent": PLATFORM,
    "Mutation.emitEvents": PLATFORM,
    "Mutation.redeliver": ADMIN,
    "Mutation.testPlugin": ADMIN,
    "Mutation.pluginAction": ANYONE,
}
ALLOWED = {
    USER: {Role.USER, Role.ADMIN},
    ADMIN: {Role.ADMIN},
    ANYONE: {Role.USER, Role.ADMIN, Role.PLATFORM},
    PLATFORM: {Role.PLATFORM},
}
SAMPLE_SCALARS: dict[str, Any] = {
    "ID": "1",
    "String": "x",
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "JSON": "x",
    "DateTime": "2026-01-01T00:00:00+00:00",
}


def sample(type_: GraphQLInputType) -> Any:
    """A value of `type_` that passes GraphQL validation, for required arguments."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type)
    if isinstance(type_, GraphQLList):
        return [sample(type_.of_type)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values.values())).value
    if isinstance(type_, GraphQLInputObjectType):
        return {
            name: sample(field.type)
            for name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        }
    assert isinstance(type_, GraphQLScalarType)
    return SAMPLE_SCALARS.get(type_.name, "x")


def document(kind: str, name: str, field: GraphQLField) -> str:
    """A valid operation calling `name` with every required argument."""
    args = []
    for arg_name, arg in field.args.items():
        if isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined:
            literal = ast_from_value(sample(arg.type), arg.type)
            assert literal is not None
            args.append(f"{arg_name}: {print_ast(literal)}")
    call = f"{name}({', '.join(args)})" if args else name
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    return f"{kind.lower()} {{ {call}{selection} }}"


def operations() -> list[tuple[str, str]]:
    found = []
    for root in (schema._schema.query_type, schema._schema.mutation_type):
        assert root is not None
        for name, field in root.fields.items():
            found.append((f"{root.name}.{name}", document(root.name, name, field)))
    return found


OPERATIONS = operations()


@pytest.mark.parametrize(("operation", "query"), OPERATIONS, ids=[o for o, _ in OPERATIONS])
async def test_every_operation_needs_a_token(gql: Execute, operation: str, query: str) -> None:
    result = await gql(query, role=None)
    assert result.codes == ["UNAUTHENTICATED"], (operation, result.errors)
    assert "bearer token" in result.errors[0]["message"]


def test_every_operation_states_its_role() -> None:
    assert sorted(name for name, _ in OPERATIONS if name not in ROLE_TABLE) == []


@pytest.mark.parametrize(("operation", "query"), OPERATIONS, ids=[o for o, _ in OPERATIONS])
@pytest.mark.parametrize("role", [Role.USER, Role.PLATFORM, Role.ADMIN])
async def test_the_role_table(gql: Execute, operation: str, query: str, role: Role) -> None:
    result = await gql(query, role=role)
    if operation == "Mutation.pluginAction" and role is not Role.ADMIN:
        # Any token may ask; then the action's own role decides, before a caller it does not
        # admit learns whether the (here missing) action exists. Admins are told it is not.
        assert result.codes == ["FORBIDDEN"], result.errors
        assert "is open to the" in result.errors[0]["message"]
    elif role in ALLOWED[ROLE_TABLE[operation]]:
        # The call may fail on its sample arguments, but never for want of a role.
        assert not {"UNAUTHENTICATED", "FORBIDDEN"} & set(result.codes), result.errors
    else:
        assert result.codes == ["FORBIDDEN"], result.errors
        assert f"needs the {ROLE_TABLE[operation]} role" in result.errors[0]["message"]


async def test_a_user_browses_and_rates(gql: Execute, make_plugin: Catalog) -> None:
    plugin = await make_plugin("streamspace-slack")
    browse = await gql("{ catalog { edges { node { name } } } }", role=Role.USER)
    assert browse.ok()["catalog"]["edges"] == [{"node": {"name": "streamspace-slack"}}]
    rating = await gql(
        "mutation($id: ID!) { ratePlugin(catalogPluginId: $id, rating: 4) { rating } }",
        {"id": str(plugin.id)},
        role=Role.USER,
    )
    assert rating.ok() == {"ratePlugin": {"rating": 4}}


async def test_the_platform_cannot_browse(gql: Execute) -> None:
    result = await gql("{ catalog { totalCount } }", role=Role.PLATFORM)
    assert result.codes == ["FORBIDDEN"]


async def test_a_user_cannot_read_installed_configuration(
    gql: Execute, make_plugin: Catalog
) -> None:
    plugin = await make_plugin("streamspace-echo")
    install = "mutation($id: ID!) { installPlugin(catalogPluginId: $id) { id } }"
    assert (await gql(install, {"id": str(plugin.id)}, role=Role.ADMIN)).ok()
    result = await gql("{ installedPlugins { name config } }", role=Role.USER)
    assert "FORBIDDEN" in result.codes


async def test_introspection_needs_no_token(gql: Execute) -> None:
    result = await gql("{ __schema { queryType { name } types { name } } }", role=None)
    data = result.ok()
    assert data["__schema"]["queryType"] == {"name": "Query"}
    assert {"CatalogPlugin", "InstalledPlugin"} <= {t["name"] for t in data["__schema"]["types"]}


async def test_typename_needs_no_token(gql: Execute) -> None:
    assert (await gql("{ __typename }", role=None)).ok() == {"__typename": "Query"}


async def test_an_expired_token_says_so(gql_header: ExecuteWithHeader, services: Services) -> None:
    token = services.tokens.issue(Role.ADMIN, "alice", ttl=timedelta(seconds=-60))
    result = await gql_header("{ viewer { subject } }", f"Bearer {token}")
    assert result.codes == ["UNAUTHENTICATED"]
    assert "expired" in result.errors[0]["message"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "Basic abc"],
)
async def test_an_invalid_token_says_so(gql_header: ExecuteWithHeader, authorization: str) -> None:
    result = await gql_header("{ catalog { totalCount } }", authorization)
    assert result.codes == ["UNAUTHENTICATED"]
    message = result.errors[0]["message"]
    assert "not valid" in message or "Bearer <token>" in message


async def test_a_token_signed_with_another_secret_is_refused(
    gql_header: ExecuteWithHeader,
) -> None:
    from runtime.core.auth import TokenIssuer

    token = TokenIssuer("some-other-secret-0123456789-0123456789").issue(Role.ADMIN, "mallory")
    result = await gql_header("{ viewer { subject } }", f"Bearer {token}")
    assert result.codes == ["UNAUTHENTICATED"]
    assert "not valid" in result.errors[0]["message"]


async def test_a_valid_header_token_is_accepted(
    gql_header: ExecuteWithHeader, services: Services
) -> None:
    token = services.tokens.issue(Role.USER, "carol")
    result = await gql_header("{ viewer { subject roles } }", f"bearer {token}")
    assert result.ok() == {"viewer": {"subject": "carol", "roles": ["user"]}}
