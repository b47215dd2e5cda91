"""Offline guarantees: no connection outside loopback, Guardrails metrics off, no hosted inference."""

from __future__ import annotations

import socket

import pytest
from guardrails import AsyncGuard, Guard

from . import conftest
from .conftest import UNSAFE_RESPONSE


def test_detector_refuses_non_loopback_before_any_packet(_offline):  # type: ignore[no-untyped-def]
    det = _offline
    before = len(det.attempts)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(conftest.BlockedNetworkError):
            sock.connect(("203.0.113.1", 443))  # TEST-NET-3: refused before connecting
    finally:
        sock.close()
    with pytest.raises(conftest.BlockedNetworkError):
        socket.create_connection(("203.0.113.1", 80), timeout=0.01)
    with pytest.raises(conftest.BlockedNetworkError):
        socket.getaddrinfo("hty0gc1ok3.execute-api.us-east-1.amazonaws.com", 443)  # Guardrails' metrics sink
    assert [w for w, _ in det.attempts[before:]] == ["connect", "create_connection", "getaddrinfo"]
    del det.attempts[before:]  # expected: do not fail this test in teardown


def test_guardrails_metrics_and_remote_inference_are_off(make_validator):  # type: ignore[no-untyped-def]
    from guardrails.settings import settings
    from guardrails.utils.hub_telemetry_utils import HubTelemetry

    g = Guard().use(make_validator(on_fail="noop"))
    assert settings.rc.enable_metrics is False and settings.rc.use_remote_inferencing is False
    assert g._allow_metrics_collection is False
    assert HubTelemetry()._enabled is False
    assert make_validator().use_local is True


async def test_scripted_guardrails_flows_attempt_no_network(_offline, make_validator):  # type: ignore[no-untyped-def]
    det = _offline
    start = len(det.attempts)
    v = make_validator(on_fail="fix")
    Guard().use(v).validate(f"ok, {UNSAFE_RESPONSE}", metadata={"request": "q"})
    await AsyncGuard().use(make_validator(on_fail="fix")).validate("fine", metadata={"request": "q"})

    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        yield from ["One sentence. ", "Two sentences."]

    list(Guard().use(make_validator(on_fail="noop"))(llm_api=llm, messages=[{"role": "user", "content": "hi"}],
                                                     stream=True))
    Guard().use(make_validator(on_fail="fix")).to_runnable().invoke("fine")
    assert det.attempts[start:] == []
    if conftest.IMPORT_OBSERVED:
        assert conftest.IMPORT_ATTEMPTS == [], "importing guardrails / the validator attempted network access"


def test_rc_with_remote_inference_on_still_judges_locally(tmp_path, monkeypatch, make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    (tmp_path / ".guardrailsrc").write_text("enable_metrics=false\nuse_remote_inferencing=true\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    g = Guard().use(make_validator(on_fail="fix"))  # Guard() re-reads the rc file
    from guardrails.settings import settings

    assert settings.rc.use_remote_inferencing is True
    calls = scripted_guard.judge.backend.calls
    assert g.validate(f"now {UNSAFE_RESPONSE}").validated_output == "I can't help with that."
    assert scripted_guard.judge.backend.calls == calls + 1  # judged by the local (scripted) guard


def test_package_import_stays_light():
    import subprocess
    import sys

    code = ("import sys, guardrails_ai.proguard as p; "
            "assert 'guardrails' not in sys.modules and 'llama_index' not in sys.modules; "
            "assert p.__all__ == ['DEFAULT_REFUSAL', 'ProGuardValidator']")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_offline_problems_reports_what_is_missing(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    from guardrails_ai.proguard.offline import offline_problems

    assert offline_problems() == []  # the test setup is fully offline
    monkeypatch.setenv("HOME", str(tmp_path))  # no rc file: metrics default to on
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    problems = offline_problems()
    assert any("metrics are on" in p for p in problems) and any("LITELLM" in p for p in problems)
