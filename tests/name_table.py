"""A resolver answering from a table, as a DNS server under someone's control would, for
address policies in tests."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from aiohttp.abc import AbstractResolver, ResolveResult

from runtime.core.address_policy import AddressPolicy


class NameTable(AbstractResolver):
    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


def with_names(policy: AddressPolicy, table: Mapping[str, list[str]]) -> AddressPolicy:
    """`policy`, resolving names from `table` only."""
    return AddressPolicy(policy.allowed_networks, policy.file_roots, lambda: NameTable(table))
