"""OpenTelemetry spans around checks, recorded with the SDK's in-memory exporter.

The judge is an in-process scripted backend (deterministic verdicts); the spans come from the
real OpenTelemetry API and SDK.
"""

from __future__ import annotations

import os

import pytest

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.backends.scripted import safe_answer, unsafe_answer

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

SECRET = "my-secret-payload-7731"


@pytest.fixture(scope="module")
def exporter():
    # the suite sets OTEL_SDK_DISABLED (no telemetry leaves a test); this provider only exports
    # to memory, so it is built with the SDK enabled
    disabled = os.environ.pop("OTEL_SDK_DISABLED", None)
    try:
        provider = otel_sdk.TracerProvider()
    finally:
        if disabled is not None:
            os.environ["OTEL_SDK_DISABLED"] = disabled
    exp = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:  # pragma: no cover - set once per process
        pytest.skip("another tracer provider is already installed in this process")
    return exp


def _guard() -> ProGuard:
    backend = ScriptedBackend(rules=[("bomb", unsafe_answer("C8S1")), ("deepfake", unsafe_answer("Deepfake Voice Cloning"))],
                              default=safe_answer())
    return ProGuard(backend=backend, cache_size=0)


def _content_free(span) -> None:
    for value in span.attributes.values():
        assert SECRET not in str(value) and "Deepfake" not in str(value)


def test_scripted_one_span_per_check_with_attributes_and_no_content(exporter):
    exporter.clear()
    guard = _guard()
    d = guard.check(f"how to build a bomb {SECRET}")
    assert d.status == "blocked"
    (span,) = exporter.get_finished_spans()
    assert span.name == "proguard.check"
    a = span.attributes
    assert a["proguard.judge"] == guard.judge.identity()
    assert a["proguard.modality"] == "text" and a["proguard.status"] == "blocked"
    assert a["proguard.category"] == "C8S1" and a["proguard.allowed"] is False
    assert a["proguard.latency_ms"] >= 0
    _content_free(span)


def test_scripted_batch_span_has_a_child_per_item_and_errors_mark_the_span(exporter):
    exporter.clear()
    guard = _guard()
    decisions = guard.check_batch([f"hello {SECRET}", f"deepfake {SECRET}", {"bad": "shape"}])
    assert [d.status for d in decisions] == ["allowed", "blocked", "error"]
    spans = exporter.get_finished_spans()
    parent = [s for s in spans if s.name == "proguard.check_batch"]
    children = [s for s in spans if s.name == "proguard.check"]
    assert len(parent) == 1 and len(children) == 3
    assert all(c.parent is not None and c.parent.span_id == parent[0].context.span_id for c in children)
    by_status = {c.attributes["proguard.status"]: c for c in children}
    assert by_status["blocked"].attributes["proguard.category"] == "out_of_policy"
    err = by_status["error"]
    assert err.status.status_code == trace.StatusCode.ERROR and err.attributes["proguard.error_type"]
    assert parent[0].attributes["proguard.batch_size"] == 3
    for s in spans:
        _content_free(s)


def test_scripted_unreadable_input_still_gets_a_span(exporter):
    exporter.clear()
    d = _guard().check(12345)  # not text, messages or a request: an input error
    assert d.status == "error"
    (span,) = exporter.get_finished_spans()
    assert span.attributes["proguard.status"] == "error" and "proguard.modality" not in span.attributes


def test_scripted_without_opentelemetry_checks_run_and_record_nothing(exporter, monkeypatch):
    from proguard_rails import telemetry

    monkeypatch.setattr(telemetry, "_trace", None)  # as if opentelemetry-api were not installed
    exporter.clear()
    assert _guard().check("how to build a bomb").status == "blocked"
    assert exporter.get_finished_spans() == ()
