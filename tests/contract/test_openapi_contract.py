"""Each service against its own OpenAPI document (schemathesis, every default check): no server
error, no undocumented status or media type, every response in its documented schema, invalid
input refused and valid input accepted. Fixed seed, bounded examples: the same run every time.
Event streams (text/event-stream) never end by themselves: they are left out here and held to
their document over a socket by `test_event_streams.py`.

"Valid input accepted" also allows 412 and 422: an `If-Match` may be well formed and stale,
and some rules are beyond a JSON schema (an opaque cursor must be one this API issued,
`date_to` must not precede `date_from`, an import's rows are checked against the strategy
catalogue), refused as validation errors naming the field. Every other check runs as
schemathesis ships it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from bali_common.auth import Role
from bali_devkit.testing.plugin import SettingsFactory, TokenBook
from contract_support import EVENT_STREAM, SERVICES
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.python import asgi

#: Examples per operation, generation mode and caller: the contract suite stays within minutes.
EXAMPLES = 15
SEED = 20231204

#: Callers the contract runs as: a member agency, a co-chair, and an administrator, so that
#: member, co-chair and admin-only operations are all reached past their authorization.
CALLERS = {
    "member": lambda tokens: tokens("MY", (Role.member,)),
    "co_chair": lambda tokens: tokens.co_chair("AU"),
    "admin": lambda tokens: tokens.admin(),
}


def config_for(authorization: str) -> schemathesis.Config:
    """The caller's bearer token as the document's security scheme, so that schemathesis
    knows it (its ignored-auth check replays requests without and with a wrong one)."""
    token = authorization.removeprefix("Bearer ")
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": [
                        *["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]
                    ]
                }
            },
        }
    )


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.fixture
def lifespans() -> Iterator[None]:
    """schemathesis runs the app's lifespan in its own event loop: stop it after the test."""
    yield
    asgi.shutdown_lifespans()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_service_honours_its_openapi_document(
    service: str, make_settings: SettingsFactory, lifespans: None
) -> None:
    under_test = SERVICES[service]
    settings = await make_settings(under_test.settings)
    app = under_test.create_app(settings)
    tokens = TokenBook(settings)
    failures: list[str] = []
    for caller, headers_of in CALLERS.items():
        config = config_for(headers_of(tokens)["Authorization"])
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        operations = [
            operation
            for operation in (result.ok() for result in schema.get_all_operations())
            if not streams(operation.definition.raw)
        ]
        assert operations
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failure = _explore(operation, mode)
                if failure:
                    failures.append(f"{operation.label} [{mode.value}, {caller}]: {failure}")
    assert not failures, "\n\n".join(failures)
    with asgi.get_client(app) as client:
        scrape = client.get("/metrics").text
    # The callers' tokens were used: requests past their authorization succeeded.
    assert re.search(under_test.authorised, scrape)


def streams(operation: dict[str, Any]) -> bool:
    """An event stream never ends by itself: `test_event_streams.py` holds it to its document."""
    return EVENT_STREAM in operation.get("responses", {}).get("200", {}).get("content", {})


def _explore(operation: Any, mode: GenerationMode) -> str | None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.seed(SEED)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate()

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        return None
    except (Exception, BaseExceptionGroup) as error:
        return str(error)[:3000]
    return None
