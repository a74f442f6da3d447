"""OpenTelemetry tracing: one trace from HTTP request through outbox and broker to consumer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from bali_common.settings import CommonSettings

_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "bali"


class _RecordWhileExported(Sampler):
    """Records spans only once something exports them; until then spans are non-recording
    (no attributes, no processors), yet carry trace ids, so a traceparent still travels from
    an HTTP request through the outbox and the broker to the consumer."""

    def __init__(self) -> None:
        self.exporting = False
        self._sampled = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if self.exporting:
            return self._sampled.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "RecordWhileExported"


def configure_tracing(
    settings: CommonSettings, *, extra_processors: tuple[SpanProcessor, ...] = ()
) -> None:
    """Install a tracer provider once per process; spans are recorded and exported only when
    an OTLP endpoint (or, in tests, another processor) is configured."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=_RecordWhileExported(),
        )
        trace.set_tracer_provider(provider)
    sampler = provider.sampler
    exporting = isinstance(sampler, _RecordWhileExported) and sampler.exporting
    if settings.otlp_endpoint and not exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        )
    for processor in extra_processors:
        provider.add_span_processor(processor)
    if isinstance(sampler, _RecordWhileExported):
        sampler.exporting = sampler.exporting or bool(settings.otlp_endpoint or extra_processors)


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
def batch_span(
    name: str,
    traceparents: Sequence[str | None],
    *,
    kind: SpanKind,
    attributes: dict[str, str] | None = None,
) -> Iterator[Span]:
    """A span over several messages, linked to the context each carried (a batch has no one
    parent). Links are built only when spans are recorded."""
    links: list[Link] = []
    if spans_exported():
        for traceparent in traceparents:
            if traceparent:
                context = trace.get_current_span(
                    _PROPAGATOR.extract({"traceparent": traceparent})
                ).get_span_context()
                if context.is_valid:
                    links.append(Link(context))
    with tracer().start_as_current_span(
        name, kind=kind, attributes=attributes, links=links
    ) as span:
        yield span


@contextmanager
def server_span(name: str, traceparent: str | None) -> Iterator[Span]:
    with span_from_traceparent(name, traceparent, kind=SpanKind.SERVER) as span:
        yield span


def spans_exported() -> bool:
    """Whether anything records and exports spans (an OTLP endpoint, or a test's processor)."""
    sampler = getattr(trace.get_tracer_provider(), "sampler", None)
    return isinstance(sampler, _RecordWhileExported) and sampler.exporting
