"""The fake endpoint itself: routes, knobs, counters, restart on the same port."""

from __future__ import annotations

import httpx
import pytest

from proguard_rails.protocol import parse_answer
from proguard_rails.testing_server import (
    FakeChatServer,
    FakeChatServerProcess,
    expected_for_tag,
    tag,
    tagged_answer,
)


def _chat(base_url: str, text: str, **extra) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], **extra}
    return httpx.post(base_url + "/chat/completions", json=body, timeout=10)


def test_routes_answers_and_counters():
    with FakeChatServer(model="ProGuard-7B") as srv:
        models = httpx.get(srv.base_url + "/models", timeout=10).json()
        assert models["data"][0]["id"] == "ProGuard-7B"
        r = _chat(srv.base_url, f"hello {tag(5)}", stop=["</answer>"])
        content = r.json()["choices"][0]["message"]["content"]
        assert "</answer>" not in content  # cut at the stop string, as vLLM does
        v = parse_answer(content, "text")
        assert v.description == expected_for_tag(5)["category"] and v.reasoning == "answer for req-5"
        assert httpx.get(srv.url("/nope"), timeout=10).status_code == 404
        assert httpx.get(srv.base_url + "/chat/completions", timeout=10).status_code == 405
        st = srv.stats
        assert (st.models_requests, st.chat_requests, st.answered) == (1, 1, 1)
        srv.reset_stats()
        assert srv.stats.chat_requests == 0


def test_behaviours_and_one_shot_script():
    with FakeChatServer(answer="fixed text") as srv:
        srv.push("error", "malformed")
        assert _chat(srv.base_url, "a").status_code == 500
        assert _chat(srv.base_url, "b").text.startswith('{"id": "chatcmpl-x", "choices"')
        assert _chat(srv.base_url, "c").json()["choices"][0]["message"]["content"] == "fixed text"
        srv.configure(behaviour="close")
        with pytest.raises(httpx.RemoteProtocolError):
            _chat(srv.base_url, "d")
        srv.configure(behaviour="hang")
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(srv.base_url + "/chat/completions", json={"messages": []}, timeout=0.3)
        assert srv.stats.hung == 1
        with pytest.raises(ValueError):
            srv.configure(behaviour="explode")


def test_kill_and_restart_on_the_same_port():
    srv = FakeChatServer().start()
    port = srv.port
    assert _chat(srv.base_url, tag(3)).status_code == 200
    srv.kill()
    assert not srv.running
    with pytest.raises(httpx.ConnectError):
        _chat(srv.base_url, tag(3))
    srv.start()
    assert srv.port == port and srv.starts == 2
    assert _chat(srv.base_url, tag(3)).status_code == 200
    srv.stop()


def test_subprocess_server_is_configured_over_http():
    with FakeChatServerProcess(delay=0.0) as srv:
        assert srv.running and srv.pid
        r = _chat(srv.base_url, tag(2))
        assert r.json()["choices"][0]["message"]["content"] == tagged_answer(
            {"messages": [{"role": "user", "content": tag(2)}]})
        srv.push("error")
        assert _chat(srv.base_url, "x").status_code == 500
        srv.configure(answer="constant")
        assert _chat(srv.base_url, "y").json()["choices"][0]["message"]["content"] == "constant"
        assert srv.stats.chat_requests == 3
        with pytest.raises(TypeError):
            srv.configure(answer=lambda body: "no")
