"""A guarded multimodal chain: an image in a ``HumanMessage`` reaches ProGuard with the text.

Runs offline. The images are drawn in memory with Pillow and sent as content blocks in
both LangChain formats (OpenAI ``image_url`` with a data URL, and the v1 standard
``{"type": "image", "base64": ...}`` block). The chat model is a langchain-core fake, and
the guard is a DEMO guard: ProGuard's engine on an in-process ScriptedBackend whose rule
looks at the pixels the guard received and calls a mostly red image unsafe. It is NOT a
safety model; it shows that the image, not just the text, is what gets judged. Set
PROGUARD_BASE_URL=http://HOST:8000/v1 to judge with a served ProGuard (vision) model.

    python examples/langchain_multimodal_chain.py
"""

from __future__ import annotations

import base64
import io
import os

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import HumanMessage
from langchain_proguard import ProGuardRail
from PIL import Image

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.backends.scripted import safe_answer, unsafe_answer
from proguard_rails.protocol import RenderedPrompt


def png_b64(color: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def demo_rule(prompt: RenderedPrompt) -> str:
    """Demo only: 'unsafe' when any image the guard received is mostly red."""
    modality = prompt.modality.value
    for image in prompt.images:
        r, g, b = image.to_pil().resize((1, 1)).getpixel((0, 0))
        if r > 150 and g < 80 and b < 80:
            return unsafe_answer("C10", modality=modality)  # text-image answers name a main category
    return safe_answer(modality)


def make_guard() -> ProGuard:
    if os.environ.get("PROGUARD_BASE_URL"):
        return ProGuard()
    return ProGuard(backend=ScriptedBackend(default=demo_rule))


def main() -> None:
    guard = make_guard()
    model = GenericFakeChatModel(messages=iter(["A calm blue square.", "A red square."]))
    guarded = ProGuardRail.around(model, guard, on_block="refuse",
                                  refusal="I can't help with this image.")

    blue = HumanMessage(content=[
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png_b64((30, 60, 200))}},
    ])
    red = HumanMessage(content=[
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image", "base64": png_b64((220, 20, 20)), "mime_type": "image/png"},
    ])
    for name, message in (("blue image", blue), ("red image", red)):
        answer = guarded.invoke([message])
        verdict = answer.response_metadata.get("proguard")
        print(f"{name:>10}: {answer.content!r}" + (f"  ({verdict['reason']})" if verdict else ""))

    # The rail alone, as an input check before any model: the image is judged too.
    decision_rail = ProGuardRail(guard, check="input", on_block="refuse", refusal="blocked")
    refused = decision_rail.invoke([red])
    print("input rail:", refused.content, f"({refused.response_metadata['proguard']['reason']})")


if __name__ == "__main__":
    main()
