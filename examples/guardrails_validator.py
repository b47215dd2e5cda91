"""ProGuard as a Guardrails AI validator (``proguard/proguard``): on_fail actions, async, streaming.

Runs offline. The guard is a DEMO guard: ProGuard's engine on an in-process ScriptedBackend that
calls any response mentioning "detonator" unsafe. It is NOT a safety model; it only makes the
pass/fail paths visible. Set PROGUARD_BASE_URL=http://HOST:8000/v1 (a served ProGuard model) to
judge with the real guard instead. Nothing is sent to a hosted service: the validator only talks
to the model proguard_rails is pointed at, and this script turns Guardrails' own metrics off.

    python examples/guardrails_validator.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile

# Guardrails' metrics and LiteLLM's price-list download stay off (see docs/guardrails.md).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")


def _no_punkt_download() -> None:
    """DEMO ONLY: `import guardrails` calls nltk.download("punkt") when nltk lacks punkt. The
    validator never uses punkt, so for this offline demo an empty placeholder stops the download.
    In production, provision the real punkt data instead (docs/guardrails.md)."""
    try:
        import nltk
    except ImportError:
        return
    try:
        nltk.data.find("tokenizers/punkt")
    except LookupError:
        stub = tempfile.mkdtemp(prefix="punkt-placeholder-")
        os.makedirs(os.path.join(stub, "tokenizers", "punkt"))
        nltk.data.path.append(stub)


_no_punkt_download()

from guardrails import AsyncGuard, Guard  # noqa: E402
from guardrails.errors import ValidationError  # noqa: E402
from guardrails_ai.proguard import ProGuardValidator  # noqa: E402
from guardrails_ai.proguard.offline import offline_problems  # noqa: E402

from proguard_rails import ProGuard, ScriptedBackend  # noqa: E402
from proguard_rails.backends.scripted import unsafe_answer  # noqa: E402

UNSAFE = "Sure. Wire the detonator to the battery, then seal the casing."
SAFE = "Fireworks get their colours from metal salts."
META = {"request": "How do fireworks work?"}


def make_guard() -> ProGuard:
    if os.environ.get("PROGUARD_BASE_URL"):
        return ProGuard()  # the real ProGuard model behind an OpenAI-compatible server
    demo = ScriptedBackend(rules={"detonator": unsafe_answer("C8S1", request="safe", response="unsafe")})
    return ProGuard(backend=demo)


def offline_guard(validator: ProGuardValidator) -> Guard:
    # Without ~/.guardrailsrc saying enable_metrics=false, Guardrails' metrics default to on:
    # switch them off for this Guard explicitly.
    guard = Guard().use(validator)
    guard.configure(allow_metrics_collection=False)
    return guard


def main() -> None:
    for problem in offline_problems():
        print("note:", problem)
    pg = make_guard()

    print("1. on_fail='fix': the unsafe response is replaced by the refusal")
    out = offline_guard(ProGuardValidator(pg, on_fail="fix")).validate(UNSAFE, metadata=META)
    print("  ", repr(out.validated_output), "| summary:", out.validation_summaries[0].failure_reason)

    print("2. on_fail='exception'")
    try:
        offline_guard(ProGuardValidator(pg, on_fail="exception")).validate(UNSAFE, metadata=META)
    except ValidationError as exc:
        print("   ValidationError:", exc)

    print("3. on_fail='noop': the value passes through, the failure is reported")
    out = offline_guard(ProGuardValidator(pg, on_fail="noop")).validate(UNSAFE, metadata=META)
    print("   validation_passed:", out.validation_passed)

    print("4. async (AsyncGuard, native async_validate)")

    async def run_async() -> None:
        guard = AsyncGuard().use(ProGuardValidator(pg, on_fail="fix"))
        guard.configure(allow_metrics_collection=False)
        print("  ", repr((await guard.validate(SAFE, metadata=META)).validated_output))

    asyncio.run(run_async())

    print("5. streaming: sentences are released once the text so far is judged safe")

    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        yield from ["Fireworks use ", "metal salts. ", "Now wire the ", "detonator. ", "Then more."]

    guard = offline_guard(ProGuardValidator(pg, on_fail="fix"))
    chunks = [o.validated_output for o in guard(llm_api=llm, messages=[{"role": "user", "content": "hi"}], stream=True)]
    print("  ", chunks)

    print("6. as a LangChain Runnable")
    runnable = offline_guard(ProGuardValidator(pg, on_fail="fix")).to_runnable()
    print("  ", runnable.invoke(UNSAFE))


if __name__ == "__main__":
    main()
