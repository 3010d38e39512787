"""The spec tells the truth: schemathesis fuzzes every operation of the OpenAPI document
against the app, in process, with every check on.

One pytest item per operation (so xdist spreads them); each runs a bounded, derandomized
number of examples, so a run is the same run every time (`FUZZ_EXAMPLES=200 pytest
tests/test_schemathesis.py` digs deeper). The operations of a worker share one migrated
database and one tenant: state piles up as it would on a real server.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from schemathesis.generation.meta import GenerationMode, ParameterLocation
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import negative_data_rejection

from referral.app import create_app
from referral.openapi import document
from tests.conftest import PREFIX, _with_database, make_settings
from tests.factories import make_tenant

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))


class _AppUnderTest:
    """schemathesis binds the ASGI app when it collects the operations; the app needs the
    worker's database, known only once the `fuzzed_app` fixture made it. This forwards."""

    app: Litestar | None = None
    secret_key = ""

    async def __call__(self, scope, receive, send) -> None:
        assert self.app is not None, "the fuzzed_app fixture sets the app before the first call"
        await self.app(scope, receive, send)


APP = _AppUnderTest()
# The document the app generates (tests/test_openapi.py holds openapi/openapi.json to it).
schema = schemathesis.openapi.from_dict(json.loads(document()))
schema.app = APP

# Every check runs with its default expectations, and two additions:
# - A request the schema allows may still break a rule JSON Schema cannot state (a refund
#   above what is left, review_score above block_score, a currency the program does not pay
#   in): a 422, listed per operation with its problem types, which the response schema check
#   holds the answer to. Any other refusal of valid data (a 400 above all) is the spec lying.
# - A body above the service's 1 MB limit is a 413 (documented on every operation), whether
#   or not the schema would take it: 10,000 domains of 254 characters are schema-valid.
_positive = schema.config.checks.positive_data_acceptance
_positive.expected_statuses = [*_positive.expected_statuses, "413", "422"]
_negative = schema.config.checks.negative_data_rejection
_negative.expected_statuses = [*_negative.expected_statuses, "413"]


@schema.auth()
class _SecretKey:
    """The worker's secret key on every case, except where a negative case leaves the
    Authorization header out on purpose (schemathesis then expects the 401)."""

    def get(self, case, context) -> str:
        return APP.secret_key

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="session")
async def fuzzed_app(admin_url: str, template_db: str) -> AsyncIterator[Litestar]:
    name = f"{PREFIX}_fuzz"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        url = _with_database(admin_url, name)
        conn = await asyncpg.connect(url)
        try:
            APP.secret_key = (await make_tenant(conn, "Fuzzed shop")).secret_key
        finally:
            await conn.close()
        APP.app = create_app(make_settings(url))
        yield APP.app
        # schemathesis started the app's lifespan on its own loop: stop it (pool, click
        # writer) before the database goes.
        schemathesis_asgi.shutdown_lifespans()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_operation_keeps_its_spec(case, fuzzed_app: Litestar):
    if _only_the_file_is_negative(case):
        # A file upload's body is bytes: "not a string" cannot be sent, whatever the
        # generator meant (it serialises its array as the CSV's text), and a file's lines
        # are judged one by one after upload. The rest of the case is still checked.
        case.call_and_validate(excluded_checks=[negative_data_rejection])
        return
    case.call_and_validate()


# Operations whose body is a file's raw bytes (text/csv, application/x-ndjson).
_RAW_FILE_BODIES = {("POST", "/v1/imports")}


def _only_the_file_is_negative(case) -> bool:
    if (case.method.upper(), case.path) not in _RAW_FILE_BODIES or case.meta is None:
        return False
    modes = {where: info.mode for where, info in case.meta.components.items()}
    return modes.get(ParameterLocation.BODY) == GenerationMode.NEGATIVE and all(
        mode != GenerationMode.NEGATIVE
        for where, mode in modes.items()
        if where != ParameterLocation.BODY
    )
