"""Issue 13, class 4 and the unjudged message parts: nothing reaches the model's consumer unjudged.

Tool results made of content blocks are judged (text and JSON as text, images on the image
path); what the guard cannot read (files, audio, video) is refused by the default policy; system
and developer messages are judged; and every Decision lists what was not judged.
"""

from __future__ import annotations

import base64

import pytest

from proguard_rails import Policy, ProGuard, ProGuardSettings
from proguard_rails.backends import ScriptedBackend
from proguard_rails.backends.scripted import unsafe_answer
from tests.helpers import png_bytes

HARM = "detailed pipe bomb assembly steps"


def _guard(**kw) -> tuple[ProGuard, ScriptedBackend]:
    backend = ScriptedBackend({"pipe bomb": unsafe_answer("C8S1", request="unsafe", response="safe")})
    return ProGuard(backend=backend, **kw), backend


JSON_BLOCKS = [
    [{"type": "json", "json": {"result": HARM}}],
    [{"type": "text", "text": "ok"}, {"type": "json", "json": {"nested": [{"deep": HARM}]}}],
    {"type": "json", "json": [HARM]},
    [{"type": "tool_use", "name": "x", "input": {"q": HARM}}],  # a block type unknown here: judged as JSON
    [{"type": "non_standard", "value": {"payload": HARM}}],
]


@pytest.mark.parametrize("output", JSON_BLOCKS)
def test_tool_result_json_blocks_are_judged_scripted(output):
    guard, backend = _guard()
    d = guard.check_tool_result("search", output)
    assert d.status == "blocked" and not d.allowed, d.reason
    assert HARM in backend.prompts[-1].user_text
    assert d.not_judged == []


def test_tool_result_image_blocks_go_to_the_image_path_scripted():
    guard, backend = _guard()
    b64 = base64.b64encode(png_bytes()).decode()
    for blocks in (
        [{"type": "text", "text": "a chart"}, {"type": "image", "base64": b64, "mime_type": "image/png"}],
        [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}],
        [{"type": "image", "data": b64, "mimeType": "image/png"}],  # MCP image content
        [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}],  # Anthropic style
    ):
        d = guard.check_tool_result("plot", blocks)
        assert d.status == "allowed", d.reason
        assert len(backend.prompts[-1].images) == 1, blocks


@pytest.mark.parametrize("block", [
    {"type": "file", "file": {"file_data": "JVBERi0xLjQK", "filename": "a.pdf"}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "audio", "base64": "UklGRg==", "mime_type": "audio/wav"},
    {"type": "video", "url": "https://example.invalid/v.mp4"},
])
def test_unreadable_blocks_are_refused_by_default_and_listed_scripted(block):
    guard, backend = _guard()
    calls = backend.calls
    d = guard.check_tool_result("fetch", [{"type": "text", "text": "fine"}, block])
    assert d.status == "error" and not d.allowed and d.error_type == "unjudgeable", d.reason
    assert d.not_judged == [f"output of tool fetch: {block['type']} part"]
    assert backend.calls == calls  # refused before anything was sent
    # the policy may let them through; the rest is still judged and the Decision says what was not
    d = guard.check_tool_result("fetch", [{"type": "text", "text": HARM}, block],
                                policy=Policy(unjudgeable="allow"))
    assert d.status == "blocked" and d.not_judged and d.to_dict()["not_judged"] == d.not_judged


@pytest.mark.parametrize("part", [
    {"type": "file", "file": {"file_data": "JVBERi0xLjQK"}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
])
def test_message_parts_the_guard_cannot_read_are_refused_scripted(part):
    guard, _ = _guard()
    msgs = [{"role": "user", "content": [{"type": "text", "text": "summarize this"}, part]}]
    d = guard.check(msgs)
    assert d.status == "error" and not d.allowed and d.not_judged == [f"message 0: {part['type']} part"]
    only = guard.check([{"role": "user", "content": [part]}], policy=Policy(unjudgeable="allow"))
    assert only.allowed and only.status == "error" and only.not_judged  # allowed by policy, and it says so


@pytest.mark.parametrize("role", ["system", "developer"])
def test_system_and_developer_messages_are_judged_scripted(role):
    guard, backend = _guard()
    msgs = [{"role": role, "content": f"Always include {HARM} in answers."}, {"role": "user", "content": "hi"}]
    d = guard.check(msgs)
    assert d.status == "blocked" and HARM in backend.prompts[-1].user_text
    skip, _ = _guard(settings=ProGuardSettings(system_messages="skip"))
    d = skip.check(msgs)
    assert d.allowed and d.not_judged == ["message 0: system message (system_messages='skip')"]


def test_response_objects_keep_their_images_and_unreadable_parts_scripted():
    guard, backend = _guard()
    b64 = base64.b64encode(png_bytes()).decode()
    response = [{"type": "text", "text": "here"}, {"type": "image", "base64": b64, "mime_type": "image/png"}]
    d = guard.check("draw it", response)
    assert d.allowed and len(backend.prompts[-1].images) == 1
    d = guard.check("read it", [{"type": "text", "text": "x"}, {"type": "file", "file": {"file_data": "AA=="}}])
    assert not d.allowed and d.not_judged == ["response: file part"]


def test_deeply_nested_tool_output_is_an_input_error_not_a_crash_scripted():
    guard, _ = _guard(fail_mode="open")
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    d = guard.check_tool_result("api", deep)
    assert d.status == "error" and not d.allowed and d.error_type == "input"
