"""Servers for the scale-out tests: PostgreSQL and Redis, each test on its own schema or prefix.

Where a server cannot be reached the tests that need it are skipped with the reason; in CI
(CI=true) they fail instead, so a missing service can never pass as a green run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache

import psycopg
import pytest
import redis
from psycopg import sql

POSTGRES = os.environ.get("AEGISPAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("AEGISPAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT = 3


@cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it answers."""
    try:
        with psycopg.connect(POSTGRES, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {POSTGRES} is not reachable ({str(error).strip()})"
    return None


@cache
def redis_problem() -> str | None:
    """Why Redis cannot be used here, or None when it answers."""
    try:
        client = redis.Redis.from_url(REDIS, socket_connect_timeout=CONNECT_TIMEOUT)
        client.ping()
        client.close()
    except redis.RedisError as error:
        return f"Redis at {REDIS} is not reachable ({error})"
    return None


def require(problem: str | None) -> None:
    """Fail in CI, skip elsewhere, when a server this test needs is missing."""
    if problem is None:
        return
    hint = "see README, 'Scale-out', to start one"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem}: CI must provide it", pytrace=False)
    pytest.skip(f"{problem}; {hint}")


def new_schema_name() -> str:
    """A schema name no other test uses."""
    return f"test_{uuid.uuid4().hex[:16]}"


def drop_schema(schema: str) -> None:
    """Drop a test's schema and everything in it."""
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL on a schema of this test's own, dropped afterwards."""
    require(postgres_problem())
    schema = new_schema_name()
    yield f"{POSTGRES}?schema={schema}"
    drop_schema(schema)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL with a key prefix of this test's own; its keys are deleted afterwards."""
    require(redis_problem())
    prefix = new_schema_name()
    yield f"{REDIS}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
