"""SSRF: every vector is refused at registration and at connect time; the canary hears nothing."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from bali_devkit.testing.plugin import serving
from bali_notifications.channels.webhook import WebhookSender
from bali_notifications.ssrf import (
    BlockedDestination,
    EgressGuard,
    literal_address,
    refusal_reason,
    system_resolver,
)
from notification_harness import Harness, ServiceStarter, alert_raised
from notification_receivers import Canary, Reply, TlsFiles, WebhookReceiver, issue_tls

PUBLIC_ADDRESS = "93.184.216.34"


class FakeDns:
    """DNS is outside the system: these names answer what each test needs, in order."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        queue = self.answers.get(host)
        if queue is None:
            return await system_resolver(host, port)
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def dns() -> FakeDns:
    return FakeDns()


@dataclass(frozen=True)
class TlsReceiver:
    receiver: WebhookReceiver
    files: TlsFiles


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def tls_receiver(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsReceiver]:
    """A real https receiver whose certificate names `localhost` only."""
    files = issue_tls(tmp_path_factory.mktemp("tls"))
    receiver = WebhookReceiver()
    async with serving(
        receiver, receiver.port, ssl_certfile=str(files.certificate), ssl_keyfile=str(files.key)
    ):
        yield TlsReceiver(receiver, files)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(
    notifications: ServiceStarter, tls_receiver: TlsReceiver, dns: FakeDns
) -> AsyncIterator[Harness]:
    tls_port = tls_receiver.receiver.port
    async with notifications.started(
        "ssrf",
        also_allow=[f"localhost:{tls_port}", f"127.0.0.1:{tls_port}"],
        resolver=dns,
        webhook_ca_file=str(tls_receiver.files.ca),
    ) as harness:
        yield harness


def vectors(canary: Canary) -> list[str]:
    port = canary.port
    return [
        f"https://127.0.0.1:{port}/hook",
        f"https://[::1]:{port}/hook",
        "https://169.254.169.254/latest/meta-data/",
        f"https://0x7f000001:{port}/hook",
        f"https://2130706433:{port}/hook",
        f"https://127.1:{port}/hook",
        f"https://0177.0.0.1:{port}/hook",
        f"https://localhost:{port}/hook",
        f"https://loopback.test:{port}/hook",
        f"https://[::ffff:127.0.0.1]:{port}/hook",
        f"https://[64:ff9b::7f00:1]:{port}/hook",
        f"http://127.0.0.1:{port}/hook",
        "https://10.1.2.3/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
    ]


async def test_every_ssrf_vector_is_refused_at_registration(
    harness: Harness, canary: Canary, dns: FakeDns
) -> None:
    dns.answers["loopback.test"] = [["127.0.0.1"]]
    before = canary.connections
    for url in vectors(canary):
        response = await harness.client.post(
            "/v1/subscriptions",
            json={"name": "probe", "channel": "webhook", "url": url},
            headers=harness.tokens("PH"),
        )
        assert response.status_code == 422, (url, response.text)
        assert response.json()["errors"][0]["field"] == "body.url", url
    assert canary.connections == before == 0


async def test_every_ssrf_vector_is_refused_again_at_connect_time(
    harness: Harness, canary: Canary, dns: FakeDns
) -> None:
    """Sends blocked = 100 %, even for a URL that somehow bypassed registration."""
    dns.answers["loopback.test"] = [["127.0.0.1"]]
    channel = WebhookSender(harness.settings, harness.parts.guard, harness.parts.secrets)
    try:
        for url in vectors(canary):
            outcome = await channel.post(
                url=url, message_id="m", secrets_in_use=["whsec_AAAA"], body=b"{}", timestamp=1
            )
            assert not outcome.succeeded, url
            assert outcome.status_code is None, url
            assert outcome.error is not None
            assert outcome.error.startswith("blocked"), (url, outcome.error)
    finally:
        await channel.aclose()
    assert canary.connections == 0


async def test_dns_rebinding_after_registration_is_blocked_at_connect_time(
    harness: Harness, canary: Canary, dns: FakeDns
) -> None:
    dns.answers["rebind.test"] = [[PUBLIC_ADDRESS], ["127.0.0.1"]]
    created = await harness.client.post(
        "/v1/subscriptions",
        json={
            "name": "rebinding",
            "channel": "webhook",
            "url": f"https://rebind.test:{canary.port}/hook",
            "member_ids": ["IOM"],
        },
        headers=harness.tokens("IOM"),
    )
    assert created.status_code == 201, created.text
    subscription_id = created.json()["id"]
    event = await harness.publish(alert_raised(raised_by="IOM"), subject="rebind")
    deliveries = await harness.planned(event, 1)
    await harness.dispatch()
    webhook = next(d for d in await harness.deliveries(subscription_id=subscription_id))
    assert webhook.id in {d.id for d in deliveries}
    assert webhook.status == "retrying"
    assert webhook.last_error is not None
    assert "loopback" in webhook.last_error
    detail = await harness.client.get(f"/v1/deliveries/{webhook.id}", headers=harness.tokens.ops())
    assert detail.json()["attempts"][0]["error"].startswith("blocked")
    assert canary.connections == 0
    await harness.client.delete(
        f"/v1/subscriptions/{subscription_id}", headers=harness.tokens("IOM")
    )


async def test_redirect_from_allow_listed_receiver_to_loopback_is_not_followed(
    harness: Harness, webhook_receiver: WebhookReceiver, canary: Canary
) -> None:
    endpoint = webhook_receiver.endpoint(
        default=Reply(302, {"Location": f"http://127.0.0.1:{canary.port}/internal"})
    )
    created = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "redirects", "channel": "webhook", "url": endpoint.url, "member_ids": ["MY"]},
        headers=harness.tokens("MY"),
    )
    assert created.status_code == 201, created.text
    endpoint.secrets.append(created.json()["secret"])
    event = await harness.publish(alert_raised(raised_by="MY"), subject="redirect")
    await harness.planned(event, 1)
    await harness.dispatch()
    [webhook] = await harness.deliveries(subscription_id=created.json()["id"])
    assert len(endpoint.requests) == 1
    assert webhook.last_status_code == 302
    assert webhook.status == "retrying"
    assert webhook.last_error is not None
    assert "redirect not followed" in webhook.last_error
    assert canary.connections == 0
    await harness.client.delete(
        f"/v1/subscriptions/{created.json()['id']}", headers=harness.tokens("MY")
    )


async def test_https_goes_to_the_checked_address_yet_keeps_the_name_for_tls_and_host(
    harness: Harness, tls_receiver: TlsReceiver
) -> None:
    port = tls_receiver.receiver.port
    by_name = tls_receiver.receiver.endpoint()
    by_address = tls_receiver.receiver.endpoint()
    ids = []
    for endpoint, host in ((by_name, "localhost"), (by_address, "127.0.0.1")):
        created = await harness.client.post(
            "/v1/subscriptions",
            json={
                "name": f"tls via {host}",
                "channel": "webhook",
                "url": f"https://{host}:{port}{endpoint.path}",
                "member_ids": ["IOM"],
            },
            headers=harness.tokens("IOM"),
        )
        assert created.status_code == 201, created.text
        endpoint.secrets.append(created.json()["secret"])
        ids.append(created.json()["id"])
    event = await harness.publish(alert_raised(raised_by="IOM"), subject="tls")
    await harness.planned(event, 2)
    await harness.dispatch()
    [named] = await harness.deliveries(subscription_id=ids[0])
    [numbered] = await harness.deliveries(subscription_id=ids[1])
    assert named.status == "delivered", named.last_error
    [hook] = by_name.requests
    assert hook.verified
    assert hook.headers["host"] == f"localhost:{port}"
    assert numbered.status == "retrying", "the certificate does not name 127.0.0.1"
    assert numbered.last_error is not None
    assert "certificate" in numbered.last_error.lower()
    assert by_address.requests == []
    for subscription_id in ids:
        await harness.client.delete(
            f"/v1/subscriptions/{subscription_id}", headers=harness.tokens("IOM")
        )


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.org", None),
    ],
)
def test_numeric_spellings_are_read_as_the_resolver_reads_them(
    spelling: str, address: str | None
) -> None:
    parsed = literal_address(spelling)
    assert (str(parsed) if parsed else None) == address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", [PUBLIC_ADDRESS, "2606:4700:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


async def test_allow_list_admits_http_and_private_addresses_only_where_listed() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"internal.test": ["10.9.8.7"], "public.test": [PUBLIC_ADDRESS]}[host]

    guard = EgressGuard(["127.0.0.1:9000", "10.9.0.0/16"], resolve)
    assert (await guard.check("http://127.0.0.1:9000/hook")).port == 9000
    assert (await guard.check("http://internal.test/hook")).host == "internal.test"
    assert (await guard.check("https://public.test/hook")).host == "public.test"
    for refused in ("http://127.0.0.1:9001/hook", "http://public.test/hook"):
        with pytest.raises(BlockedDestination):
            await guard.check(refused)
    strict = EgressGuard([], resolve)
    for refused in ("http://public.test/hook", "https://internal.test/hook"):
        with pytest.raises(BlockedDestination):
            await strict.check(refused)
    for malformed in ("ftp://public.test/", "https://user:pw@public.test/", "https:///x", "nope"):
        with pytest.raises(BlockedDestination):
            await strict.check(malformed)


@pytest.mark.parametrize("entry", ["127.0.0.1:9²", "127.0.0.1:", "127.0.0.1:70000", "host"])
def test_an_allow_list_entry_without_a_plain_port_is_refused_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="neither host:port nor a CIDR block"):
        EgressGuard([entry])
