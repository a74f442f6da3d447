"""OpenTelemetry tracing: one trace from HTTP request through outbox and broker to consumer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bali_common.settings import CommonSettings

_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "bali"


def configure_tracing(
    settings: CommonSettings, *, extra_processors: tuple[SpanProcessor, ...] = ()
) -> None:
    """Install a tracer provider once per process; export over OTLP only when configured."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
            )
        trace.set_tracer_provider(provider)
    for processor in extra_processors:
        provider.add_span_processor(processor)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, stored on outbox rows at staging time."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span_from_traceparent(
    name: str, traceparent: str | None, *, kind: SpanKind, attributes: dict[str, str] | None = None
) -> Iterator[Span]:
    """A span whose parent is the remote context named by `traceparent`, if any."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(name, kind=kind, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)


@contextmanager
def server_span(name: str, traceparent: str | None) -> Iterator[Span]:
    with span_from_traceparent(name, traceparent, kind=SpanKind.SERVER) as span:
        yield span
