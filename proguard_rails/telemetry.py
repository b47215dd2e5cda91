"""OpenTelemetry spans around checks, when ``opentelemetry-api`` is installed.

Every ``ProGuard`` check (``check``, ``acheck``, batches, tool calls and results, and so every
adapter and the server) runs inside a span ``proguard.check`` (one check) or
``proguard.check_batch`` with one ``proguard.check`` child per item. Attributes:

==========================  ===========================================================
``proguard.judge``          judge identity (``generative:openai:http://...:ProGuard-7B``, ``lite:...``)
``proguard.check``          conversation, input, output, tool_call, tool_result
``proguard.modality``       text, image, text-image (absent when the input could not be read)
``proguard.status``         allowed, blocked, error
``proguard.allowed``        what the application is told to do
``proguard.flagged``        allowed, flagged by the policy
``proguard.category``       category id, ``out_of_policy`` for a risk outside the policy, absent if none
``proguard.error_type``     error kind (timeout, unavailable, parse, input ...) for errors
``proguard.fail_mode``      closed/open, when an error was decided by the fail mode
``proguard.cached``         the verdict came from the cache
``proguard.latency_ms``     time from the start of the call to the decision
==========================  ===========================================================

Never the content: no text, no image, no model reasoning and no out-of-policy description
(model text that may quote the input). Errors set the span status to ERROR.

Without ``opentelemetry-api`` this module does nothing and costs one failed import, once.
Without an SDK configured, the API's no-op tracer is used (cheap). Install it with
``pip install 'proguard-rails[otel]'`` and configure an SDK ``TracerProvider`` as usual.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .verdict import Decision

_UNSET: Any = object()
_trace: Any = _UNSET


def _otel() -> Any:
    """``opentelemetry.trace`` or None (imported on first use, never at package import)."""
    global _trace
    if _trace is _UNSET:
        try:
            from opentelemetry import trace as otel_trace
        except ImportError:
            otel_trace = None  # type: ignore[assignment]
        _trace = otel_trace
    return _trace


def _tracer(trace: Any) -> Any:
    from . import __version__

    # not cached: the global provider may be set after the first check, and get_tracer is cheap
    return trace.get_tracer("proguard_rails", __version__)


def decision_attributes(judge: str, decision: Decision, modality: str | None, latency_s: float) -> dict[str, Any]:
    """The span attributes of one decision (content-free by construction)."""
    v = decision.verdict
    attrs: dict[str, Any] = {
        "proguard.judge": judge,
        "proguard.check": decision.check,
        "proguard.status": decision.status,
        "proguard.allowed": decision.allowed,
        "proguard.flagged": decision.flagged,
        "proguard.latency_ms": round(latency_s * 1000.0, 3),
    }
    mod = str(v.modality) if v is not None else modality
    if mod:
        attrs["proguard.modality"] = mod
    if v is not None:
        if v.category_id:
            attrs["proguard.category"] = v.category_id
        elif v.is_out_of_policy:
            attrs["proguard.category"] = "out_of_policy"
        attrs["proguard.cached"] = v.cached
    if decision.error_type:
        attrs["proguard.error_type"] = decision.error_type
    if decision.fail_mode_applied:
        attrs["proguard.fail_mode"] = decision.fail_mode_applied
    return attrs


class _Recorder:
    def __init__(self, trace: Any, span: Any, judge: str, n: int, start_perf: float, start_ns: int) -> None:
        self._trace, self._span, self._judge, self._n = trace, span, judge, n
        self._start_perf, self._start_ns = start_perf, start_ns

    def finish(self, decisions: Sequence[Decision], modalities: Sequence[str | None]) -> None:
        if self._span is None:
            return
        latency = time.perf_counter() - self._start_perf
        trace = self._trace
        if self._n == 1 and len(decisions) == 1:
            self._annotate(self._span, decisions[0], modalities[0] if modalities else None, latency)
            return
        counts: dict[str, int] = {}
        tracer = _tracer(trace)
        ctx = trace.set_span_in_context(self._span)
        for i, d in enumerate(decisions):
            counts[d.status] = counts.get(d.status, 0) + 1
            child = tracer.start_span("proguard.check", context=ctx, start_time=self._start_ns)
            self._annotate(child, d, modalities[i] if i < len(modalities) else None, latency)
            child.end()
        self._span.set_attribute("proguard.judge", self._judge)
        self._span.set_attribute("proguard.batch_size", len(decisions))
        for status, count in counts.items():
            self._span.set_attribute(f"proguard.{status}", count)

    def _annotate(self, span: Any, d: Decision, modality: str | None, latency: float) -> None:
        span.set_attributes(decision_attributes(self._judge, d, modality, latency))
        if d.status == "error":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, d.error_type or "error"))


class _NoRecorder:
    def finish(self, decisions: Sequence[Decision], modalities: Sequence[str | None]) -> None:
        return None


_NO_RECORDER = _NoRecorder()


@contextlib.contextmanager
def trace_checks(judge: str, n: int) -> Iterator[_Recorder | _NoRecorder]:
    """A span around ``n`` checks; call ``finish(decisions, modalities)`` on what it yields."""
    trace = _otel()
    if trace is None:
        yield _NO_RECORDER
        return
    start_perf, start_ns = time.perf_counter(), time.time_ns()
    name = "proguard.check" if n == 1 else "proguard.check_batch"
    with _tracer(trace).start_as_current_span(name, start_time=start_ns) as span:
        yield _Recorder(trace, span, judge, n, start_perf, start_ns)


def record_checks(judge: str, decisions: Sequence[Decision], modalities: Sequence[str | None],
                  start_perf: float) -> None:
    """Spans for checks decided without going through ``trace_checks`` (e.g. unreadable input)."""
    trace = _otel()
    if trace is None:
        return
    latency = time.perf_counter() - start_perf
    start_ns = time.time_ns() - int(latency * 1e9)
    span = _tracer(trace).start_span("proguard.check", start_time=start_ns)
    _Recorder(trace, span, judge, len(decisions), start_perf, start_ns).finish(decisions, modalities)
    span.end()


__all__ = ["decision_attributes", "record_checks", "trace_checks"]
