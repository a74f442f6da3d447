"""Tracing costs nothing until something exports spans, and the trace travels regardless."""

from __future__ import annotations

from bali_common.telemetry import _RecordWhileExported
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _request_span(provider: TracerProvider) -> tuple[bool, str]:
    parent = TraceContextTextMapPropagator().extract({"traceparent": INCOMING})
    token = otel_context.attach(parent)
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("POST /v1/things", kind=SpanKind.SERVER) as span:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            return span.is_recording(), carrier["traceparent"]
    finally:
        otel_context.detach(token)


def test_without_an_exporter_no_span_is_recorded_but_the_trace_id_travels_on() -> None:
    recording, outgoing = _request_span(TracerProvider(sampler=_RecordWhileExported()))
    assert not recording
    assert outgoing.split("-")[1] == INCOMING.split("-")[1]


def test_once_something_exports_the_spans_are_recorded() -> None:
    sampler = _RecordWhileExported()
    sampler.exporting = True
    recording, outgoing = _request_span(TracerProvider(sampler=sampler))
    assert recording
    assert outgoing.split("-")[1] == INCOMING.split("-")[1]
    assert outgoing.split("-")[2] != INCOMING.split("-")[2], "a child span of the caller's"
