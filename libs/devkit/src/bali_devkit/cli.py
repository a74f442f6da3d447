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
from bali_reporting.rebuild.client import RebuildRefused, run_rebuild
from bali_reporting.rebuild.models import RebuildStatus
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bali_devkit.broker import EmbeddedBroker
from bali_devkit.demo import load_demo
from bali_devkit.maildrop import MailDrop

app = typer.Typer(help="Bali Process Cooperation Platform", no_args_is_help=True)
reporting_app = typer.Typer(help="The reporting service", no_args_is_help=True)
app.add_typer(reporting_app, name="reporting")

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
    broker: EmbeddedBroker | None = None
    kafka_bootstrap = options.kafka_bootstrap
    if kafka_bootstrap is None:
        broker = EmbeddedBroker(options.broker_port, log_file=data_dir / "logs" / "broker.log")
        broker.start()
        kafka_bootstrap = broker.bootstrap_servers
        _say("broker", f"embedded Kafka-protocol broker (tansu) on {kafka_bootstrap}")
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
        # Where reporting reads each service's /metrics for the pipeline health report.
        **{f"BALI_{s.name.upper()}_URL": f"http://{host}:{s.port}" for s in services},
    }
    await ensure_topics(settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    processes: dict[str, asyncio.subprocess.Process] = {}
    pumps: list[asyncio.Task[None]] = []
    exit_code = 0
    try:
        for service in services:
            env = {
                **base_env,
                "BALI_PORT": str(service.port),
                "BALI_PUBLIC_BASE_URL": f"http://{host}:{service.port}",
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                service.module,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            processes[service.name] = process
            pumps.append(asyncio.create_task(_pump(service.name, process)))
        if not await _wait_healthy(host, services, processes):
            return 1
        _print_welcome(settings, host, services, kafka_bootstrap, mail.directory)
        if options.demo:
            await load_demo(settings, {s.name: f"http://{host}:{s.port}" for s in services}, _say)
        exited = asyncio.create_task(_first_exit(processes))
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            name = exited.result()
            _say("bali", f"{name} exited unexpectedly; stopping the platform")
            exit_code = 1
        for task in (exited, stopped):
            task.cancel()
    finally:
        await _stop_all(processes)
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        mail.stop()
        if broker is not None:
            broker.stop()
        _say("bali", "stopped")
    return exit_code


async def _pump(name: str, process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        _say(name, line.decode(errors="replace").rstrip())


def _say(name: str, text: str) -> None:
    colour = _COLOURS.get(name, 37)
    prefix = f"\033[{colour}m{name:>13}\033[0m" if sys.stdout.isatty() else f"{name:>13}"
    print(f"{prefix} | {text}", flush=True)


async def _wait_healthy(
    host: str, services: list[ServiceProcess], processes: dict[str, asyncio.subprocess.Process]
) -> bool:
    async with httpx.AsyncClient(timeout=1.0) as client:
        for service in services:
            for _ in range(600):
                if processes[service.name].returncode is not None:
                    _say("bali", f"{service.name} failed to start")
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"http://{host}:{service.port}/healthz")
                    if response.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                _say("bali", f"{service.name} did not become healthy")
                return False
    return True


async def _first_exit(processes: dict[str, asyncio.subprocess.Process]) -> str:
    waits = {asyncio.create_task(p.wait()): name for name, p in processes.items()}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return waits[next(iter(done))]


async def _stop_all(processes: dict[str, asyncio.subprocess.Process]) -> None:
    for process in processes.values():
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    for name, process in processes.items():
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            _say("bali", f"{name} did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


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


@app.command()
def demo(
    activities_url: Annotated[
        str, typer.Option(help="Activities service")
    ] = "http://127.0.0.1:8001",
    consultation_url: Annotated[
        str, typer.Option(help="Consultation service")
    ] = "http://127.0.0.1:8002",
    reporting_url: Annotated[str, typer.Option(help="Reporting service")] = "http://127.0.0.1:8004",
    seed: Annotated[int, typer.Option(help="Same seed and day, same data")] = 2023,
    activities: Annotated[int, typer.Option(min=1, max=5000, help="Activities to create")] = 240,
    data_dir: Annotated[Path, typer.Option(envvar="BALI_DATA_DIR")] = Path(".bali"),
) -> None:
    """Load a demo year into a running platform through its public APIs (dev tokens)."""
    urls = {
        "activities": activities_url,
        "consultation": consultation_url,
        "reporting": reporting_url,
    }
    summary = asyncio.run(
        load_demo(_settings(data_dir), urls, _say, seed=seed, activities=activities)
    )
    raise typer.Exit(1 if summary.failures else 0)


@reporting_app.command()
def rebuild(
    url: Annotated[str, typer.Option(help="Reporting service")] = "http://127.0.0.1:8004",
    data_dir: Annotated[Path, typer.Option(envvar="BALI_DATA_DIR")] = Path(".bali"),
) -> None:
    """Replay every topic into fresh projections and swap them in, with a progress bar.

    The service does the work (`POST /v1/admin/rebuild`); this follows its progress."""
    token = issue_dev_token(
        _settings(data_dir), subject="dev-admin", member_id=None, roles=[Role.admin]
    )
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("queued", total=None, counts="")

        def show(status: RebuildStatus) -> None:
            target = f"/{status.events_target:,}" if status.events_target is not None else ""
            rate = f"  {status.events_per_second:,.0f} events/s" if status.events_per_second else ""
            progress.update(
                task,
                description=status.state.value,
                completed=status.events_read,
                total=status.events_target,
                counts=f"{status.events_read:,}{target} events{rate}",
            )

        try:
            final = asyncio.run(run_rebuild(url, token, on_progress=show))
        except (RebuildRefused, httpx.HTTPError) as error:
            typer.echo(f"rebuild not started: {error}", err=True)
            raise typer.Exit(2) from error
    if final.state.value != "done":
        typer.echo(f"rebuild {final.state.value}: {final.error}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"rebuilt from {final.events_read:,} records ({final.events_applied:,} events, "
        f"{final.duplicates:,} published twice, {final.skipped:,} skipped)"
    )


def main() -> None:
    app()
