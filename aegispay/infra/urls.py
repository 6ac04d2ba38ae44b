"""Store URLs: `memory://` and `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`."""

from __future__ import annotations

from dataclasses import dataclass

from aegispay.domain.errors import InvalidRequest

SCHEMES = ("memory", "sqlite")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: its scheme and, for files, the path."""

    scheme: str
    path: str = ""


def parse_store_url(field: str, url: object) -> StoreURL:
    """Parse a store URL or raise InvalidRequest naming the field and the accepted forms."""
    if not isinstance(url, str):
        raise InvalidRequest(field, "must be a URL string such as 'sqlite:///aegispay.db'", url)
    if url == "memory://":
        return StoreURL("memory")
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return StoreURL("sqlite", url[len("sqlite:///") :])
    raise InvalidRequest(
        field, "must be 'memory://' or 'sqlite:///path.db' (four slashes for an absolute path)", url
    )
