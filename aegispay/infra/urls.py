"""Store URLs: `memory://` and `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aegispay.domain.errors import InvalidRequest

SCHEMES = ("memory", "sqlite")
SQLITE_PREFIX = "sqlite:///"


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
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        raise InvalidRequest(
            field,
            "must be 'memory://' or 'sqlite:///path.db' (four slashes for an absolute path)",
            url,
        )
    path = url[len(SQLITE_PREFIX) :]
    # SQLite's own ":memory:" would vanish on close, yet the URL reads as a durable file.
    if path == ":memory:":
        raise InvalidRequest(field, "must be 'memory://' for a store in memory", url)
    # A path is taken literally: '?' and '#' would not pass SQLite options, they would name a file.
    if "?" in url or "#" in url:
        raise InvalidRequest(field, "must not have a query string or fragment ('?' or '#')", url)
    if Path(path).is_dir():
        raise InvalidRequest(field, "is a directory: name a database file", path)
    return StoreURL("sqlite", path)


def check_distinct(store: StoreURL, gateway: StoreURL) -> None:
    """Refuse one SQLite file for both the event store and the gateway's ledger."""
    if store.scheme == gateway.scheme == "sqlite" and _same_file(store.path, gateway.path):
        raise InvalidRequest(
            "gateway",
            "must be a different file from the store: the gateway keeps its own ledger",
            gateway.path,
        )


def _same_file(first: str, second: str) -> bool:
    """Whether two paths name one file: through links when both exist, else once resolved."""
    a, b = Path(first), Path(second)
    if a.exists() and b.exists():
        return a.samefile(b)
    return a.resolve() == b.resolve()
