"""Registry fixtures: an engine URL per backend (SQLite always; PostgreSQL when
CLAWCTL_TEST_POSTGRES_URL is set, each test in its own throwaway schema)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawctl.registry.engine import Registry


def _postgres_url() -> Iterator[str]:
    base = os.environ.get("CLAWCTL_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("CLAWCTL_TEST_POSTGRES_URL is not set (see docs/registry.md)")
    import sqlalchemy as sa

    from clawctl.registry.engine import driver_url

    url = driver_url(sa.make_url(base))
    schema = f"clawctl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, clawctl_home: Path) -> Iterator[str]:
    """A registry URL for a fresh, empty registry on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{clawctl_home / 'registry.db'}"
    else:
        yield from _postgres_url()


@pytest.fixture
def registry(registry_url: str, clawctl_home: Path) -> Iterator[Registry]:
    """An open Registry on each backend, closed (engine disposed) after the test."""
    with Registry(registry_url, home=clawctl_home, timeout=5.0) as reg:
        yield reg


@pytest.fixture
def sqlite_registry(clawctl_home: Path) -> Iterator[Registry]:
    """A Registry on the default SQLite file in the temporary CLAWCTL_HOME."""
    with Registry(home=clawctl_home, timeout=5.0) as reg:
        yield reg
