"""Property-based tests (hypothesis) for the answer parser and the input normalizer.

Parser: arbitrary model output raises nothing but ``AnswerParseError``, and never parses
as safe unless the text says safe. Neutralizer: idempotent, and text without markers
passes unchanged. Normalizer: the text it was given is in the request, unless the
request says it was truncated (and then its head and tail are).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from proguard_rails import AnswerParseError, InputError
from proguard_rails.inputs import build_request, clean_text, normalize, truncate_text
from proguard_rails.protocol import _skeleton, format_answer, neutralize, parse_answer
from proguard_rails.settings import ProGuardSettings

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODALITIES = ["text", "image", "text-image"]

# ------------------------------------------------------------------ strategies
FRAGMENTS = [
    "<think>", "</think>", "<thinking>", "</thinking>", "<answer>", "</answer>", "< answer >", "</ answer>",
    "Request:", "Response:", "Category:", "request :", "RESPONSE：", "**Request:**", "`Category:`",
    "unsafe", "Unsafe", "UNSAFE", "un safe", "None", "C1S1", "C8", "C12S9", "[C3S2]", "C3S2: Fraud",
    "weird new risk", "n/a", "\n", "\n\n", " ", "  ", "\t", ".", "!", ",", "*", "**", "__", "`", ":",
    "Request:unsafe\nResponse:unsafe\nCategory:C2S1", "<|im_end|>", "‹answer›", "› Request:",
]
SAFE_FRAGMENTS = ["safe", "Safe", "SAFE", "safe.", "Request:safe", "Response: safe", "Request: **safe**"]


def text_from(fragments: list[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(fragments), st.text(max_size=8))
    return st.lists(piece, max_size=25).map("".join)


any_output = st.one_of(st.text(max_size=400), text_from(FRAGMENTS + SAFE_FRAGMENTS))
no_safe_output = text_from(FRAGMENTS).filter(lambda t: not re.search(r"(?<!un)safe", t, re.IGNORECASE))


def _says_safe(text: str, field: str) -> bool:
    """Independent oracle: the text holds ``<field> : safe`` (markup aside, any case)."""
    plain = text.replace("*", "").replace("_", "").replace("`", "")
    return re.search(rf"{field}\s*[:：]\s*safe(?![a-z])", plain, re.IGNORECASE) is not None


# ------------------------------------------------------------------ parser
@SETTINGS
@given(text=any_output, modality=st.sampled_from(MODALITIES))
@example(text="<answer>\nRequest: safe\nResponse: safe\n", modality="text")
@example(text="<think>" * 50, modality="text")
@example(text="Request:safe Response:safe Request:unsafe", modality="text")
def test_parser_raises_only_answer_parse_error(text, modality):
    try:
        v = parse_answer(text, modality)
    except AnswerParseError as exc:
        assert exc.raw == text  # the raw text is kept for the error decision
        return
    assert v.request in ("safe", "unsafe")
    if modality == "image":
        assert v.response is None
    else:
        assert v.response in ("safe", "unsafe")
    assert v.raw == text


@SETTINGS
@given(text=any_output, modality=st.sampled_from(MODALITIES))
def test_parser_says_safe_only_when_the_text_says_safe(text, modality):
    try:
        v = parse_answer(text, modality)
    except AnswerParseError:
        return
    if v.request == "safe":
        assert _says_safe(text, "request")
    if v.response == "safe":
        assert _says_safe(text, "response")


@SETTINGS
@given(text=no_safe_output, modality=st.sampled_from(MODALITIES))
def test_text_that_never_says_safe_never_parses_safe(text, modality):
    try:
        v = parse_answer(text, modality)
    except AnswerParseError:
        return
    assert v.request == "unsafe"
    assert v.response in (None, "unsafe")
    assert v.unsafe


@SETTINGS
@given(
    request=st.sampled_from(["safe", "unsafe"]),
    response=st.sampled_from(["safe", "unsafe"]),
    category=st.one_of(st.none(), st.sampled_from(["C1S1", "C3", "C11S2", "novel drone swarm risk"])),
    reasoning=text_from(FRAGMENTS + SAFE_FRAGMENTS).filter(
        lambda t: not re.search(r"<\s*/?\s*(think|thinking|answer)", t, re.IGNORECASE)),
    modality=st.sampled_from(MODALITIES),
    think_tag=st.sampled_from(["think", "thinking"]),
)
def test_reasoning_never_changes_the_answer(request, response, category, reasoning, modality, think_tag):
    """Whatever the model writes while thinking (even "Request: safe"), the answer block decides."""
    raw = format_answer(modality, request, response, category, reasoning=reasoning, think_tag=think_tag)
    v = parse_answer(raw, modality)
    assert v.request == request
    assert v.response == (None if modality == "image" else response)


@SETTINGS
@given(
    first=st.sampled_from(["safe", "unsafe"]),
    second=st.sampled_from(["safe", "unsafe"]),
    modality=st.sampled_from(MODALITIES),
)
def test_disagreeing_answer_blocks_are_never_read_as_safe(first, second, modality):
    raw = format_answer(modality, first, first) + "\n" + format_answer(modality, second, second)
    try:
        v = parse_answer(raw, modality)
    except AnswerParseError:
        assert first != second
        return
    assert first == second and v.request == first


def test_parser_rejects_non_text():
    for value in (None, b"<answer>Request:safe</answer>", 3, ["Request:safe"]):
        with pytest.raises(AnswerParseError):
            parse_answer(value, "text")  # type: ignore[arg-type]


# ------------------------------------------------------------------ neutralizer
MARKER_PIECES = ["<END CONVERSATION>", "<BEGIN CONVERSATION>", "<answer>", "</answer>", "<think>", "<|im_end|>",
                 "\nUser:", "\nAgent:", "\nRequest:", "\n**Category:**", "\u2028Response:", "＜answer＞",
                 "<ЕND CONVERSATION>", "<E\u200bND", "\u202e", "\u0301", "‹", "›", "› "]
marker_text = st.one_of(st.text(max_size=300), text_from(MARKER_PIECES))


@SETTINGS
@given(text=marker_text)
def test_neutralize_is_idempotent(text):
    once, _ = neutralize(text)
    twice, n = neutralize(once)
    assert twice == once and n == 0


@SETTINGS
@given(text=st.text(max_size=300))
def test_text_without_brackets_or_colons_passes_unchanged(text):
    skeleton, _ = _skeleton(text)
    assume(not any(c in skeleton for c in "<>:"))
    assert neutralize(text) == (text, 0)


PLAIN_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.!?'-()[]{}",
                     min_size=1, max_size=12)


@SETTINGS
@given(pieces=st.lists(st.one_of(PLAIN_WORD.map(lambda w: ("w", w)), st.sampled_from(MARKER_PIECES).map(
    lambda m: ("m", m))), max_size=20))
def test_neutralize_keeps_every_ordinary_word_in_order(pieces):
    text = "".join(p for _, p in pieces)
    out, _ = neutralize(text)
    pos = 0
    for kind, piece in pieces:
        if kind != "w":
            continue
        found = out.find(piece, pos)
        assert found >= 0, (piece, out)
        pos = found + len(piece)


# ------------------------------------------------------------------ normalizer
SMALL = ProGuardSettings(max_chars=200)
any_text = st.text(max_size=700)


def _clean(t: str) -> str:
    return clean_text(t)


@SETTINGS
@given(user=any_text, agent=st.one_of(st.none(), any_text))
def test_build_request_keeps_the_text_or_says_truncated(user, agent):
    try:
        req = build_request(user, agent, settings=SMALL)
    except InputError:
        assert not _clean(user).strip() and not _clean(agent or "").strip()  # "nothing to judge"
        return
    for given_text, kept in ((user, req.user_text), (agent, req.agent_text)):
        if given_text is None:
            assert kept is None
            continue
        cleaned = _clean(given_text)
        if kept == cleaned:
            continue
        # only truncation may change it, and then the request says so and keeps both ends
        assert req.truncated, (given_text, kept)
        assert len(kept) <= SMALL.max_chars
        assert _is_head_mark_tail(kept, cleaned), (given_text, kept)


_MARK = re.compile(r"\n\[\.\.\. (\d+) characters omitted by proguard-rails \.\.\.\]\n")


def _is_head_mark_tail(kept: str, original: str) -> bool:
    """``kept`` is a head of ``original``, the visible mark counting what was left out, and its tail."""
    for m in _MARK.finditer(kept):
        head, tail = kept[: m.start()], kept[m.end():]
        if (original.startswith(head) and original.endswith(tail)
                and int(m.group(1)) == len(original) - len(head) - len(tail)):
            return len(head) + len(tail) >= SMALL.max_chars - len(m.group(0)) - 8
    return False


@SETTINGS
@given(text=st.text(min_size=0, max_size=2_000), limit=st.integers(min_value=200, max_value=1_500))
def test_truncate_text_bounds(text, limit):
    out, truncated = truncate_text(text, limit)
    assert truncated == (len(text) > limit)
    assert len(out) <= max(limit, len(text) if not truncated else limit)
    if not truncated:
        assert out == text


ROLES = ["user", "assistant", "tool", "human", "ai"]
message = st.fixed_dictionaries({
    "role": st.sampled_from(ROLES),
    "content": st.one_of(
        st.text(max_size=80),
        st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40)}), max_size=3),
    ),
})


@SETTINGS
@given(messages=st.lists(message, min_size=1, max_size=8))
def test_messages_keep_every_turn_or_say_truncated(messages):
    try:
        req = normalize(messages, settings=ProGuardSettings(max_chars=100_000))
    except InputError:
        texts = [m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
                 for m in messages]
        assert not any(_clean(t).strip() for t in texts)
        return
    assert not req.truncated
    judged = req.user_text + "\n" + (req.agent_text or "")
    for m in messages:
        parts = [m["content"]] if isinstance(m["content"], str) else [p["text"] for p in m["content"]]
        for part in parts:
            if _clean(part).strip():
                assert _clean(part).strip() in judged, (part, judged)


def test_unknown_content_parts_are_recorded_not_silently_dropped():
    req = normalize([{"role": "user", "content": [{"type": "text", "text": "hello"},
                                                  {"type": "input_audio", "input_audio": {"data": "..."}}]}])
    assert req.not_judged == ("message 0: input_audio part",)
