"""Store URLs (`memory://`, `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`,
`postgresql://user@host:5432/db?schema=name`), lock URLs (`memory://`,
`redis://host:6379/0?prefix=name`), the checks that this process may create, read and write the
files they name, and that a file is the AegisPay database it is meant to be. Every URL is parsed
here, once."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aegispay.domain.errors import InvalidRequest

SCHEMES = ("memory", "sqlite", "postgresql")
SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
REDIS_PREFIXES = ("redis://", "rediss://")
# A schema or key prefix goes into SQL and key names: plain lowercase identifiers only.
NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
STORE_FORMS = (
    "must be 'memory://', 'sqlite:///path.db' (four slashes for an absolute path) or "
    "'postgresql://user@host:5432/db?schema=name'"
)


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: its scheme and, for files, the path."""

    scheme: str
    # A file's path for sqlite; for postgresql, the connection URL without the schema option.
    path: str = ""
    schema: str = ""


@dataclass(frozen=True)
class LocksURL:
    """A parsed lock manager URL: in-process, or a Redis server with a key prefix."""

    scheme: str
    url: str = ""
    prefix: str = "aegispay"


def parse_store_url(field: str, url: object) -> StoreURL:
    """Parse a store URL or raise InvalidRequest naming the field and the accepted forms."""
    if not isinstance(url, str):
        raise InvalidRequest(field, "must be a URL string such as 'sqlite:///aegispay.db'", url)
    if url == "memory://":
        return StoreURL("memory")
    if url.startswith(POSTGRES_PREFIXES):
        conninfo, schema = _without_option(field, url, "schema", "public")
        return StoreURL("postgresql", conninfo, schema)
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        raise InvalidRequest(field, STORE_FORMS, url)
    path = url[len(SQLITE_PREFIX) :]
    # SQLite's own ":memory:" would vanish on close, yet the URL reads as a durable file.
    if path == ":memory:":
        raise InvalidRequest(field, "must be 'memory://' for a store in memory", url)
    # A path is taken literally: '?' and '#' would not pass SQLite options, they would name a file.
    if "?" in url or "#" in url:
        raise InvalidRequest(field, "must not have a query string or fragment ('?' or '#')", url)
    return StoreURL("sqlite", path)


def parse_locks_url(url: object) -> LocksURL:
    """Parse a lock manager URL ('memory://' or 'redis://host:6379/0?prefix=name')."""
    if url == "memory://":
        return LocksURL("memory")
    if not isinstance(url, str) or not url.startswith(REDIS_PREFIXES):
        raise InvalidRequest(
            "locks", "must be 'memory://' or 'redis://host:6379/0' (optionally ?prefix=name)", url
        )
    server, prefix = _without_option("locks", url, "prefix", "aegispay")
    parts = urlsplit(server)
    try:
        parts.port  # noqa: B018 - reading it is the check: a port that is no number raises
    except ValueError:
        raise InvalidRequest("locks", "the port must be a number from 1 to 65535", url) from None
    database = parts.path.strip("/") or "0"
    if not database.isdigit():
        rule = f"the database after the port must be a number such as 0, not {database!r}"
        raise InvalidRequest("locks", rule, url)
    return LocksURL("redis", server, prefix)


def _without_option(field: str, url: str, option: str, default: str) -> tuple[str, str]:
    """Split one query option off a server URL: (the URL without it, its checked value)."""
    parts = urlsplit(url)
    if not parts.hostname and not parts.path.strip("/") and parts.scheme.startswith("postgres"):
        raise InvalidRequest(field, "must name a host or a database", url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [name for name, _ in query]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        rule = f"gives {', '.join(repeated)} more than once: say each option once"
        raise InvalidRequest(field, rule, url)
    values = [value for name, value in query if name == option]
    value = values[-1] if values else default
    if not NAME.fullmatch(value):
        rule = f"{option} must be a lowercase name of letters, digits and '_' (got {value!r})"
        raise InvalidRequest(field, rule, url)
    # PostgreSQL's own schemas: tables created there would sit among the system catalogues.
    if option == "schema" and (value.startswith("pg_") or value == "information_schema"):
        rule = f"schema {value!r} belongs to PostgreSQL itself: name a schema of your own"
        raise InvalidRequest(field, rule, url)
    rest = urlencode([(name, v) for name, v in query if name != option])
    return urlunsplit(parts._replace(query=rest, fragment="")), value


def parse_storage_urls(store: object, gateway: object) -> tuple[StoreURL, StoreURL]:
    """Parse the store and gateway URLs; refuse files this process cannot use, or one for both."""
    urls = parse_store_url("store", store), parse_store_url("gateway", gateway)
    for field, url in zip(("store", "gateway"), urls, strict=True):
        if url.scheme == "sqlite":
            check_access(field, url.path)
    check_distinct(*urls)
    return urls


def check_access(field: str, path: str) -> None:
    """Refuse a database path this process could not create, read and write, naming the path."""
    parent = Path(path).parent
    found = _stat(field, parent, path)
    if found is None:
        raise InvalidRequest(field, f"directory {str(parent)!r} does not exist", path)
    if not stat.S_ISDIR(found.st_mode):
        raise InvalidRequest(field, f"{str(parent)!r} is not a directory", path)
    if not os.access(parent, os.X_OK):
        raise InvalidRequest(field, f"directory {str(parent)!r} cannot be entered", path)
    for suffix in ("", "-wal", "-shm"):
        _check_file(field, path, suffix)
    # SQLite creates the file, then its -wal and -shm files beside it, on first use.
    if not os.access(parent, os.W_OK):
        raise InvalidRequest(field, f"directory {str(parent)!r} is not writable", path)


def _check_file(field: str, path: str, suffix: str) -> None:
    """Refuse an existing file that is not a regular file this process may read and write."""
    file = Path(path + suffix)
    found = _stat(field, file, path)
    if found is None:
        return
    # The database itself is the path the error shows; its -wal and -shm files are named.
    subject = f"{path + suffix!r} " if suffix else ""
    if stat.S_ISDIR(found.st_mode):
        raise InvalidRequest(field, f"{subject}is a directory: name a database file", path)
    if not stat.S_ISREG(found.st_mode):
        raise InvalidRequest(field, f"{subject}is not a regular file", path)
    if not os.access(file, os.R_OK):
        if _vanished(file):
            return
        raise InvalidRequest(field, f"{subject}cannot be read (permission denied)", path)
    if not os.access(file, os.W_OK):
        if _vanished(file):
            return
        raise InvalidRequest(field, f"{subject}is read-only: AegisPay writes to it", path)


def _vanished(file: Path) -> bool:
    """Whether a file found a moment ago is gone: another process's last connection removes
    the -wal and -shm files when it closes, and a file that is not there is no obstacle."""
    return not file.exists()


def _stat(field: str, file: Path, path: str) -> os.stat_result | None:
    """Stat a file, following links; None if it does not exist, InvalidRequest if unreachable."""
    try:
        return file.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InvalidRequest(
            field, f"{str(file)!r} cannot be reached ({error.strerror or error})", path
        ) from None


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


# The tables that make a file an AegisPay store or gateway ledger: swapped files are caught.
REQUIRED_TABLES = {"store": ("events", "payments"), "gateway": ("charges",)}


def check_databases(store: str, gateway: str, *, existing: bool) -> None:
    """Refuse unusable paths, one file for both, a missing file when `existing`, foreign files."""
    urls = dict(zip(("store", "gateway"), parse_storage_urls(store, gateway), strict=True))
    for name, url in urls.items():
        if url.scheme == "sqlite":
            check_database(name, Path(url.path), existing=existing)


def check_database(name: str, path: Path, *, existing: bool) -> None:
    """Refuse a file that is not an AegisPay `name` database, and a missing one if `existing`."""
    if not path.is_file():
        if existing:
            raise InvalidRequest(name, "no such database file", str(path))
        return
    tables = _table_names(name, path)
    missing = [table for table in REQUIRED_TABLES[name] if table not in tables]
    # A run may start on an empty file; a file holding other tables belongs to something else.
    if missing and (existing or tables):
        raise InvalidRequest(
            name,
            f"is not an AegisPay {name} database (missing tables {', '.join(missing)})",
            str(path),
        )


def _table_names(name: str, path: Path) -> set[str]:
    """Read a database's table names without writing a byte to it."""
    # Without a -wal file everything is in the main file: immutable=1 reads it without creating
    # the -wal and -shm files that a read-only open of a WAL database would leave behind. A -wal
    # file (left by a crash) may hold tables the main file lacks, so then it is read as well.
    immutable = "" if Path(f"{path}-wal").exists() else "&immutable=1"
    uri = f"{path.resolve().as_uri()}?mode=ro{immutable}"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as error:
        raise InvalidRequest(
            name, f"is not an AegisPay {name} database ({error})", str(path)
        ) from None
    return {str(row[0]) for row in rows}
