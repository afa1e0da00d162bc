"""The viewer query: what the caller's token says."""

from runtime.core.auth import Role
from tests.graph.conftest import Execute


async def test_viewer_names_the_subject_and_roles(gql: Execute) -> None:
    result = await gql("{ viewer { subject roles } }", role=Role.ADMIN, subject="bob")
    assert result.ok() == {"viewer": {"subject": "bob", "roles": ["admin", "user"]}}


async def test_viewer_without_a_token_is_unauthenticated(gql: Execute) -> None:
    result = await gql("{ viewer { subject } }", role=None)
    assert result.codes == ["UNAUTHENTICATED"]
