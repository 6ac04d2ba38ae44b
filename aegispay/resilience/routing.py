"""Routing between gateways: the first one, in priority order, whose breaker lets a call through."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from aegispay.resilience.gateway import ResilientGateway


class GatewayRoutes:
    """The gateways in priority order (primary first), each behind its breaker."""

    def __init__(self, gateways: Sequence[ResilientGateway]) -> None:
        self._by_name = {gateway.name: gateway for gateway in gateways}

    @property
    def names(self) -> list[str]:
        """Gateway names in priority order."""
        return list(self._by_name)

    def get(self, name: str) -> ResilientGateway:
        """The gateway a payment was sent to; unknown names are a programming error."""
        return self._by_name[name]

    def route(self, exclude: Collection[str] = ()) -> str | None:
        """The first gateway not excluded whose breaker would let a call through, or None."""
        for name, gateway in self._by_name.items():
            if name not in exclude and gateway.breaker.allows_request():
                return name
        return None
