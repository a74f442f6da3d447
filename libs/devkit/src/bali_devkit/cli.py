"""The `bali` command: run the platform on the embedded default, issue dev tokens, AsyncAPI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from bali_common.auth import Role, issue_dev_token, load_or_create_dev_key
from bali_common.events.asyncapi import build_asyncapi
from bali_common.messaging.kafka import ensure_topics
from bali_common.settings import CommonSettings

from bali_devkit.broker import EmbeddedBroker
from bali_devkit.demo import load_demo
from bali_devkit.maildrop import MailDrop
from bali_devkit.supervisor import (
    BrokerWatch,
    ProcessSpec,
    SupervisedProcess,
    python_module,
    stop_in_order,
)

app = typer.Typer(help="Bali Process Cooperation Platform", no_args_is_help=True)

_COLOURS = {
    "activities": 36,
    "consultation": 35,
    "notifications": 33,
    "reporting": 32,
    "mail": 34,
    "demo": 34,
}


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    port: int

    @property
    def module(self) -> str:
        return f"bali_{self.name}"


def _settings(data_dir: Path) -> CommonSettings:
    return CommonSettings(data_dir=data_dir)


@app.command()
def token(
    member: Annotated[str | None, typer.Option(help="Member id the token acts for")] = None,
    role: Annotated[list[Role], typer.Option(help="Role; repeat for several")] = [Role.member],  # noqa: B006
    subject: Annotated[str | None, typer.Option(help="Token subject (user id)")] = None,
    hours: Annotated[int, typer.Option(help="Validity in hours")] = 12,
    data_dir: Annotated[Path, typer.Option(envvar="BALI_DATA_DIR")] = Path(".bali"),
) -> None:
    """Print a dev bearer token signed with the local key (never for production)."""
    from datetime import timedelta

    settings = _settings(data_dir)
    typer.echo(
        issue_dev_token(
            settings,
            subject=subject or f"dev-{member or 'admin'}",
            member_id=member,
            roles=role,
            ttl=timedelta(hours=hours),
        )
    )


@app.command()
def asyncapi(
    topic_prefix: Annotated[str, typer.Option(envvar="BALI_KAFKA_TOPIC_PREFIX")] = "",
) -> None:
    """Print the AsyncAPI 3.0 document of every topic and event (JSON, which is also YAML)."""
    typer.echo(json.dumps(build_asyncapi(topic_prefix=topic_prefix), indent=2))


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(envvar="BALI_DATA_DIR")] = Path(".bali"),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option()] = 19092,
    activities_port: Annotated[int, typer.Option()] = 8001,
    consultation_port: Annotated[int, typer.Option()] = 8002,
    notifications_port: Annotated[int, typer.Option()] = 8003,
    reporting_port: Annotated[int, typer.Option()] = 8004,
    smtp_port: Annotated[
        int, typer.Option(help="Local SMTP server keeping mail in DATA_DIR/mail")
    ] = 1025,
    demo: Annotated[bool, typer.Option(help="Load demo activities and an alert")] = False,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Use this Kafka cluster instead of the embedded broker")
    ] = None,
) -> None:
    """Start the broker and the four services as separate processes; Ctrl-C stops them all."""
    services = [
        ServiceProcess("activities", activities_port),
        ServiceProcess("consultation", consultation_port),
        ServiceProcess("notifications", notifications_port),
        ServiceProcess("reporting", reporting_port),
    ]
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    load_or_create_dev_key(_settings(data_dir).resolved_dev_key_path())
    options = PlatformOptions(
        data_dir=data_dir,
        host=host,
        broker_port=broker_port,
        smtp_port=smtp_port,
        demo=demo,
        kafka_bootstrap=kafka_bootstrap,
    )
    raise typer.Exit(asyncio.run(_run_platform(options, services)))


@dataclass(frozen=True)
class PlatformOptions:
    data_dir: Path
    host: str
    broker_port: int
    smtp_port: int
    demo: bool
    kafka_bootstrap: str | None


async def _run_platform(options: PlatformOptions, services: list[ServiceProcess]) -> int:
    data_dir, host = options.data_dir, options.host
    settings = _settings(data_dir)
    kafka_bootstrap = options.kafka_bootstrap
    broker: BrokerWatch | None = None
    if kafka_bootstrap is None:
        embedded = EmbeddedBroker(options.broker_port, log_file=data_dir / "logs" / "broker.log")
        kafka_bootstrap = embedded.bootstrap_servers
        topics_settings = settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap})

        async def create_topics() -> None:
            await ensure_topics(topics_settings)

        broker = BrokerWatch(embedded, _say, after_start=create_topics)
        await broker.start()
        _say("broker", f"embedded Kafka-protocol broker (tansu) on {kafka_bootstrap}")
    else:
        await ensure_topics(
            settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap})
        )
    mail = MailDrop(
        data_dir / "mail",
        host=host,
        port=options.smtp_port,
        announce=lambda line: _say("mail", line),
    )
    mail.start()
    base_env = {
        **os.environ,
        "BALI_DATA_DIR": str(data_dir),
        "BALI_HOST": host,
        "BALI_SMTP_HOST": host,
        "BALI_SMTP_PORT": str(options.smtp_port),
        "BALI_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **{f"BALI_{s.name.upper()}_PUBLIC_URL": f"http://{host}:{s.port}" for s in services},
    }
    supervised = [
        SupervisedProcess(
            ProcessSpec(
                name=service.name,
                argv=python_module(service.module),
                env={
                    **base_env,
                    "BALI_PORT": str(service.port),
                    "BALI_PUBLIC_BASE_URL": f"http://{host}:{service.port}",
                },
            ),
            _say,
        )
        for service in services
    ]
    stop_asked = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop_asked.is_set():
            _say("bali", "asked again: killing everything now")
            for process in supervised:
                process.kill()
        stop_asked.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    keepers = [asyncio.create_task(p.run(), name=f"keep:{p.spec.name}") for p in supervised]
    watch = asyncio.create_task(broker.watch() if broker else asyncio.Event().wait())
    exit_code = 0
    try:
        for process in supervised:
            await process.wait_started()
        if not await _wait_healthy(host, services):
            return 1
        _print_welcome(settings, host, services, kafka_bootstrap, mail.directory)
        if options.demo:
            await load_demo(settings, {s.name: f"http://{host}:{s.port}" for s in services}, _say)
        asked = asyncio.create_task(stop_asked.wait())
        await asyncio.wait({asked, watch}, return_when=asyncio.FIRST_COMPLETED)
        if watch.done() and not watch.cancelled() and watch.exception() is not None:
            _say("bali", f"stopping the platform: {watch.exception()}")
            exit_code = 1
        asked.cancel()
    finally:
        watch.cancel()
        await stop_in_order(supervised, _say)
        await asyncio.gather(*keepers, return_exceptions=True)
        mail.stop()
        if broker is not None:
            broker.stop()
        _say("bali", "stopped")
    return exit_code


def _say(name: str, text: str) -> None:
    colour = _COLOURS.get(name, 37)
    prefix = f"\033[{colour}m{name:>13}\033[0m" if sys.stdout.isatty() else f"{name:>13}"
    print(f"{prefix} | {text}", flush=True)


async def _wait_healthy(host: str, services: list[ServiceProcess]) -> bool:
    """Each service answers /healthz within a minute (a crash meanwhile is restarted)."""
    async with httpx.AsyncClient(timeout=1.0) as client:
        for service in services:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"http://{host}:{service.port}/healthz")
                    if response.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                _say("bali", f"{service.name} did not become healthy; stopping")
                return False
    return True


def _print_welcome(
    settings: CommonSettings,
    host: str,
    services: list[ServiceProcess],
    kafka_bootstrap: str,
    mail_directory: Path,
) -> None:
    admin = issue_dev_token(settings, subject="dev-admin", member_id=None, roles=[Role.admin])
    lines = ["", "Bali Process Cooperation Platform is up:"]
    for service in services:
        lines.append(f"  {service.name:<14} http://{host}:{service.port}/docs")
    lines += [
        f"  {'broker':<14} {kafka_bootstrap}",
        f"  {'mail':<14} {mail_directory} (every email the platform sends)",
        "",
        "Admin dev token (12 h; `bali token --help` for others):",
        f"  {admin}",
        "",
        "Press Ctrl-C to stop.",
        "",
    ]
    for line in lines:
        _say("bali", line)


def main() -> None:
    app()
