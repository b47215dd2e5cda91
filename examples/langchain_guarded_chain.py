"""A guarded LangChain chain: ``prompt | model | parser | ProGuardRail(guard)``.

Runs offline. The chat model is langchain-core's GenericFakeChatModel with canned answers,
and the guard is a DEMO guard: ProGuard's engine on an in-process ScriptedBackend that
calls anything mentioning "nerve agent" unsafe. It is NOT a safety model; it only makes
the allow/block paths visible. Set PROGUARD_BASE_URL=http://HOST:8000/v1 (a served
ProGuard model) to judge with the real guard instead.

    python examples/langchain_guarded_chain.py
"""

from __future__ import annotations

import asyncio
import os

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_proguard import ProGuardRail, ProGuardViolation

from proguard_rails import Decision, ProGuard, ScriptedBackend
from proguard_rails.backends.scripted import unsafe_answer


def make_guard() -> ProGuard:
    if os.environ.get("PROGUARD_BASE_URL"):
        return ProGuard()  # the real ProGuard model behind an OpenAI-compatible server
    demo = ScriptedBackend(rules={"nerve agent": unsafe_answer("C8S2", response="unsafe")})
    return ProGuard(backend=demo)


def refusal(blocked_text: str, decision: Decision) -> str:
    """The text shown instead of a blocked answer, naming what the guard found."""
    found = decision.description if decision.is_out_of_policy else decision.category_id
    return f"Sorry, I can't help with that. (blocked: {found})"


def main() -> None:
    guard = make_guard()
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])
    model = GenericFakeChatModel(messages=iter([
        "Bread needs flour, water, salt and yeast.",
        "Sure. To make a nerve agent you first ...",
        "Bread needs flour, water, salt and yeast.",
        "Sure. To make a nerve agent you first ...",
        "Paris is the capital of France.",
    ]))

    # 1. Screen the answer; on a block, return a refusal string (the chain outputs strings).
    #    A callable refusal sees the Decision: here it says which category was found.
    chain = prompt | model | StrOutputParser() | ProGuardRail(guard, on_block="refuse", refusal=refusal)
    print("allowed :", chain.invoke({"question": "How do I bake bread?"}))
    print("blocked :", chain.invoke({"question": "Tell me something dangerous."}))

    # 2. Streaming: text is released only after the guard judged it (every 24 new characters,
    #    each time judging the whole answer so far).
    streaming = prompt | model | StrOutputParser() | ProGuardRail(guard, stream_window_chars=24, on_block="refuse",
                                                                   refusal=refusal)
    print("stream  :", "|".join(streaming.stream({"question": "How do I bake bread?"})))
    print("stream  :", "|".join(streaming.stream({"question": "Tell me something dangerous."})))

    # 3. Screen the input first and raise; the model never sees a blocked request.
    input_checked = ProGuardRail(guard, check="input") | prompt | model | StrOutputParser()
    try:
        input_checked.invoke({"question": "How is a nerve agent made?"})
    except ProGuardViolation as exc:
        d = exc.decision
        print("raised  :", d.status, d.category_id, d.verdict.subcategory_name if d.verdict else None)

    # 4. around(): screen the input, run the chain, judge request + answer together.
    guarded = ProGuardRail.around(prompt | model | StrOutputParser(), guard, on_block="refuse")
    print("around  :", guarded.invoke({"question": "What is the capital of France?"}))

    # 5. Batches make one batched guard call for all items.
    outs = asyncio.run(ProGuardRail(guard, on_block="refuse", refusal=refusal).abatch(
        ["A safe answer.", "How to build a nerve agent", "Another safe answer."]))
    print("abatch  :", outs)


if __name__ == "__main__":
    main()
