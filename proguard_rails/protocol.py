"""The released checkpoints' prompt protocol: templates, rendering, escaping, answer parsing.

One source of truth: inference (judges) and training (rewards, data exports) both use this
module, so a protocol change reaches both.

Quirks of the released prompts, kept on purpose (the checkpoints were trained on them):
the text-image prompt asks for a main category (``C*``), the others for a subcategory
(``C*S*``); the image prompt has no Response line and fills both conversation slots with
empty strings; the template has two spaces after ``Agent:``; the prompts ask for
``<think>`` while the original training reward matched ``<thinking>`` (the parser takes
both).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import AnswerParseError
from .inputs import GuardRequest, ImageData
from .taxonomy import Category, Taxonomy, normalize_id
from .verdict import Label, Modality, Verdict

# ---------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class ModalityTemplate:
    system_head: str  # everything before the category block
    system_tail: str  # everything after it
    user: str  # with {{HUMAN_USER}} and {{AI_ASSISTANT}}


@dataclass(frozen=True)
class PromptTemplates:
    text: ModalityTemplate
    image: ModalityTemplate
    text_image: ModalityTemplate

    def for_modality(self, modality: Modality | str) -> ModalityTemplate:
        m = Modality(modality)
        return {Modality.TEXT: self.text, Modality.IMAGE: self.image, Modality.TEXT_IMAGE: self.text_image}[m]

    @classmethod
    def released(cls) -> PromptTemplates:
        return _released_templates()


@lru_cache(maxsize=1)
def released_prompts() -> dict[str, str]:
    """The released prompt strings, verbatim (``proguard_rails/data/proguard_prompts.json``)."""
    text = resources.files("proguard_rails").joinpath("data/proguard_prompts.json").read_text(encoding="utf-8")
    data: dict[str, str] = json.loads(text)
    return data


@lru_cache(maxsize=1)
def _released_templates() -> PromptTemplates:
    p = released_prompts()
    block = p["UNSAFE_CONTENT_CATEGORIES"]

    def split(name: str, user_key: str) -> ModalityTemplate:
        system = p[name]
        head, sep, tail = system.partition(block)
        if not sep:  # pragma: no cover - guards against a changed data file
            raise RuntimeError(f"{name} does not contain the released category block")
        return ModalityTemplate(head, tail, p[user_key])

    return PromptTemplates(
        text=split("TEXT_SYSTEM_PROMPT", "TEXT_USER_PROMPT_TEMPLATE"),
        image=split("IMAGE_SYSTEM_PROMPT", "IMAGE_USER_PROMPT_TEMPLATE"),
        text_image=split("TEXT_IMAGE_SYSTEM_PROMPT", "TEXT_IMAGE_USER_PROMPT_TEMPLATE"),
    )


def system_prompt(modality: Modality | str, taxonomy: Taxonomy | None = None,
                  templates: PromptTemplates | None = None) -> str:
    tpl = (templates or PromptTemplates.released()).for_modality(modality)
    return tpl.system_head + (taxonomy or Taxonomy.default()).render() + tpl.system_tail


# ---------------------------------------------------------------------------- escaping

# Invisible characters that can hide inside a marker: zero-width, bidi controls, soft
# hyphen, variation selectors, tag characters.
_INVISIBLE = set(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0xFEFF, 0x3164, 0xFFA0]
    + list(range(0x200B, 0x2010))
    + list(range(0x202A, 0x202F))
    + list(range(0x2060, 0x2070))
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0000, 0xE0080))
)
# Look-alikes of the letters and brackets used in markers (Cyrillic, Greek, others).
_CONFUSABLES = {
    **dict.fromkeys("аΑАαᎪ", "a"), **dict.fromkeys("ВвβΒᏴ", "b"), **dict.fromkeys("сСϲⅽᏟ", "c"),
    **dict.fromkeys("ԁⅾᎠ", "d"), **dict.fromkeys("еЕεΕҽᎬ", "e"), **dict.fromkeys("ɡԌ", "g"),
    **dict.fromkeys("һНΗᎻ", "h"), **dict.fromkeys("іІιΙӏⅰɪ", "i"), **dict.fromkeys("јЈ", "j"),
    **dict.fromkeys("кКκΚᏦ", "k"), **dict.fromkeys("ⅼӀᏞ", "l"), **dict.fromkeys("мМΜⅿᎷ", "m"),
    **dict.fromkeys("ոΝпɴ", "n"), **dict.fromkeys("оОοΟσ०੦", "o"), **dict.fromkeys("рРρΡᏢ", "p"),
    **dict.fromkeys("ԛ", "q"), **dict.fromkeys("гᏒʀ", "r"), **dict.fromkeys("ѕЅᏚ", "s"),
    **dict.fromkeys("тТτΤᎢ", "t"), **dict.fromkeys("υսᑌ", "u"), **dict.fromkeys("ѵνᏙ", "v"),
    **dict.fromkeys("ԝᎳ", "w"), **dict.fromkeys("хХχΧ", "x"), **dict.fromkeys("уУγΥ", "y"),
    **dict.fromkeys("ᏃΖ", "z"),
    **dict.fromkeys("˂ᐸ❮〈⟨〈⧼", "<"), **dict.fromkeys("˃ᐳ❯〉⟩〉⧽", ">"),
    **dict.fromkeys("∣ǀ｜", "|"), **dict.fromkeys("։∶꞉ː", ":"),
    # more from Unicode's confusables list: Latin-like letters, Lisu capitals, small capitals
    **dict.fromkeys("ɑꓮᴀ", "a"), **dict.fromkeys("Ььꓐʙ", "b"), **dict.fromkeys("ꓚᴄϹ", "c"),
    **dict.fromkeys("ꓓᴅ", "d"), **dict.fromkeys("℮ꓰᴇ", "e"), **dict.fromkeys("ꓝ", "f"),
    **dict.fromkeys("ցꓖɢ", "g"), **dict.fromkeys("ꓧʜ", "h"), **dict.fromkeys("ıꓲ", "i"),
    **dict.fromkeys("ꓙᴊ", "j"), **dict.fromkeys("ꓗᴋ", "k"), **dict.fromkeys("ꓡʟ", "l"),
    **dict.fromkeys("ꓟᴍ", "m"), **dict.fromkeys("ꓠ", "n"), **dict.fromkeys("০ꓳᴏ", "o"),
    **dict.fromkeys("ꓑᴘ", "p"), **dict.fromkeys("ꓣᴦ", "r"), **dict.fromkeys("ꓢꜱ", "s"),
    **dict.fromkeys("ꓔᴛ", "t"), **dict.fromkeys("ꓴᴜ", "u"), **dict.fromkeys("ꓦᴠ", "v"),
    **dict.fromkeys("ꓪᴡ", "w"), **dict.fromkeys("ꓫ", "x"), **dict.fromkeys("ꓬʏ", "y"),
    **dict.fromkeys("ꓜᴢ", "z"),
}

_TAG_RE = re.compile(
    r"<\s*/?\s*(?:"
    r"(?:begin|end)\b[^<>\n]{0,80}>?"  # <BEGIN CONVERSATION>, <END UNSAFE CONTENT CATEGORIES>, ...
    r"|(?:answer|think|thinking)\b\s*>?"  # <answer>, </think>, <thinking>
    r")"
    r"|<\|[^|<>\n]{1,40}\|>",  # chat-template special tokens: <|im_end|>, <|vision_start|>, ...
)
_LABEL_RE = re.compile(  # markdown emphasis or a quote mark before the label does not hide it
    r"^[ \t*_>]*(user|agent|assistant|human|system|request|response|category)[ \t]*:", re.MULTILINE
)
# Characters that end a line for a reader or a tokenizer (str.splitlines), besides "\n".
_LINE_BREAKS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# ASCII that the slow path folds (line breaks, hidden controls): ASCII text with none takes the fast path
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _hidden(ch: str) -> bool:
    """Invisible inside a marker: zero-width/bidi/format characters, combining marks on their
    own, and control characters other than tab and newline."""
    if ord(ch) in _INVISIBLE:
        return True
    cat = unicodedata.category(ch)
    return cat in ("Cf", "Mn", "Me") or (cat == "Cc" and ch not in "\t\n" and ch not in _LINE_BREAKS)


def _skeleton(text: str) -> tuple[str, list[int]]:
    """Detection form of ``text`` and, for each of its chars, the index of the original char.

    Invisible characters vanish, compatibility forms fold (full-width ``＜`` -> ``<``),
    accents drop, look-alike letters map to Latin, case folds, and every line break
    (``\u2028``, ``\x85``, ``\r``...) becomes ``\n`` so a label after it starts a line.
    """
    if text.isascii() and not _ASCII_CONTROL_RE.search(text):  # fast path: only case to fold
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _LINE_BREAKS:
            out.append("\n")
            index.append(i)
            continue
        if _hidden(ch):
            continue
        if ch in _CONFUSABLES:
            folded = _CONFUSABLES[ch]
        else:
            decomposed = unicodedata.normalize("NFKD", ch)
            folded = "".join(c for c in decomposed if not unicodedata.combining(c)) or ch
            folded = "".join(_CONFUSABLES.get(c, c) for c in folded)
            if unicodedata.category(ch) == "Zs":
                folded = " "
        for c in folded.lower():
            out.append(c)
            index.append(i)
    return "".join(out), index


def _visible(fragment: str) -> str:
    """A matched marker re-written without invisible characters, brackets made inert."""
    kept = "".join(ch for ch in fragment if not _hidden(ch))
    kept = unicodedata.normalize("NFKC", kept)
    kept = "".join("<" if _CONFUSABLES.get(c) == "<" else ">" if _CONFUSABLES.get(c) == ">" else c for c in kept)
    return kept.replace("<", "‹").replace(">", "›")


def neutralize(text: str) -> tuple[str, int]:
    """Make the template's own markers inert inside user/agent text, visibly.

    ``<END CONVERSATION>`` becomes ``‹END CONVERSATION›``, ``<|im_end|>`` becomes
    ``‹|im_end|›``, ``</answer>`` becomes ``‹/answer›``, and a line that starts with a role
    or answer label (``User:``, ``Agent:``, ``Request:``, ``Category:`` ...) gets a ``› ``
    quote prefix, so text cannot close the conversation block, open a turn, or forge an
    answer, while the model can still read what was written. Look-alikes (full-width,
    homoglyphs, zero-width or bidi characters inside the marker) are caught too.
    Returns the new text and the number of markers changed. Idempotent.
    """
    if not text:
        return text, 0
    if text.isascii() and "<" not in text and ":" not in text:
        return text, 0  # no tag and no label can be present
    skel, index = _skeleton(text)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) on the original text
    for m in _TAG_RE.finditer(skel):
        start = index[m.start()]
        end = index[m.end() - 1] + 1
        edits.append((start, end, _visible(text[start:end])))
    for m in _LABEL_RE.finditer(skel):
        start = index[m.start(1)]
        if any(s <= start < e for s, e, _ in edits):
            continue
        edits.append((start, start, "› "))
    if not edits:
        return text, 0
    edits.sort()
    out: list[str] = []
    pos = 0
    for start, end, repl in edits:
        if start < pos:  # overlapping tag matches: the first one already covered it
            continue
        out.append(text[pos:start])
        out.append(repl)
        pos = end
    out.append(text[pos:])
    return "".join(out), len(edits)


# ---------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for any backend: system and user text, images in order, metadata."""

    modality: Modality
    system: str
    user_text: str
    images: tuple[ImageData, ...]
    neutralized_markers: int = 0

    def to_messages(self) -> list[dict[str, Any]]:
        """OpenAI-style chat messages, as the released inference script builds them:
        the images first, then the text, in one user message."""
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": img.to_data_url()}} for img in self.images
        ]
        content.append({"type": "text", "text": self.user_text})
        return [{"role": "system", "content": self.system}, {"role": "user", "content": content}]

    @property
    def cache_prefix_key(self) -> tuple[str, int]:
        """Identifies the shared system prefix (for KV-cache reuse in local backends)."""
        return (self.modality.value, hash(self.system))


_PLACEHOLDER_RE = re.compile(r"\{\{(HUMAN_USER|AI_ASSISTANT)\}\}")


def render_user_text(template: str, user: str, agent: str) -> str:
    """Fill both slots in one pass, so text containing ``{{AI_ASSISTANT}}`` is never re-filled."""
    values = {"HUMAN_USER": user, "AI_ASSISTANT": agent}
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def render(
    request: GuardRequest,
    taxonomy: Taxonomy | None = None,
    *,
    templates: PromptTemplates | None = None,
    escape: bool = True,
) -> RenderedPrompt:
    modality = request.modality
    tpl = (templates or PromptTemplates.released()).for_modality(modality)
    tax = taxonomy or Taxonomy.default()
    system = tpl.system_head + tax.render() + tpl.system_tail
    if modality == Modality.IMAGE:
        user, agent = "", ""  # as the released inference fills the image template
    else:
        user, agent = request.user_text, request.agent_text or ""
    n = 0
    if escape:
        user, n1 = neutralize(user)
        agent, n2 = neutralize(agent)
        n = n1 + n2
    return RenderedPrompt(modality, system, render_user_text(tpl.user, user, agent), request.images, n)


def render_messages(
    request: GuardRequest | Any, taxonomy: Taxonomy | None = None, *, templates: PromptTemplates | None = None
) -> list[dict[str, Any]]:
    """OpenAI-style chat messages for one request (text, image or text-image)."""
    if not isinstance(request, GuardRequest):
        from .inputs import normalize

        request = normalize(request)
    return render(request, taxonomy, templates=templates).to_messages()


# ---------------------------------------------------------------------------- parsing

_THINK_RE = re.compile(r"<\s*(think|thinking)\s*>(.*?)<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN_RE = re.compile(r"<\s*think(?:ing)?\s*>", re.IGNORECASE)
_ANSWER_RE = re.compile(r"<\s*answer\s*>(.*?)(?:<\s*/\s*answer\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_FIELD_RE = re.compile(
    r"(?:^|(?<=\s))(request|response|category)\s*[:：]\s*(.*?)\s*(?=(?:\s(?:request|response|category)\s*[:：])|\n|\Z)",
    re.IGNORECASE,
)
_LABEL_VALUE_RE = re.compile(r"^(safe|unsafe)[\s.!,;]*$", re.IGNORECASE)
_CAT_ID_RE = re.compile(r"^\[?\(?(C\d+(?:S\d+)?)\)?\]?(?:\s*[:\-—–(]\s*(.*?)\)?)?$", re.IGNORECASE)
_NONE_VALUES = {"none", "n/a", "na", "null", "nil", "no category", "-", ""}
MAX_DESCRIPTION_CHARS = 200


def _strip_markup(line: str) -> str:
    return line.replace("**", "").replace("__", "").replace("`", "").strip()


def _fields(body: str, raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in body.splitlines():
        line = _strip_markup(line)
        if not line:
            continue
        for m in _FIELD_RE.finditer(line):
            key = m.group(1).lower()
            value = m.group(2).strip().strip("*").strip()
            if key in found and found[key].lower() != value.lower():
                raise AnswerParseError(f"conflicting {key} values in the answer: {found[key]!r} vs {value!r}", raw)
            found[key] = value
    return found


def _label(value: str | None, key: str, raw: str) -> Label:
    if value is None:
        raise AnswerParseError(f"the answer has no {key.capitalize()} line", raw)
    m = _LABEL_VALUE_RE.match(value.strip())
    if not m:
        raise AnswerParseError(f"{key.capitalize()} is {value!r}, expected safe or unsafe", raw)
    return "unsafe" if m.group(1).lower() == "unsafe" else "safe"


def _answer_body(text: str) -> tuple[str, str | None]:
    """The answer block's content and the reasoning. Raises when there is none to read."""
    reasoning_parts = [m.group(2).strip() for m in _THINK_RE.finditer(text)]
    rest = _THINK_RE.sub("\n", text)
    reasoning = "\n".join(reasoning_parts) if reasoning_parts else None
    blocks = [b.strip() for b in _ANSWER_RE.findall(rest)]
    blocks = [b for b in blocks if b]
    if blocks:
        normalized = {re.sub(r"\s+", " ", _strip_markup(b)).lower() for b in blocks}
        if len(normalized) > 1:
            raise AnswerParseError("several answer blocks that disagree", text)
        return blocks[-1], reasoning
    if _THINK_OPEN_RE.search(rest):
        raise AnswerParseError("the reasoning never closed and no answer followed (output cut off?)", text)
    # No <answer> tags: accept only a bare answer, i.e. text made of label lines alone.
    lines = [_strip_markup(x) for x in rest.strip().splitlines() if x.strip()]
    if lines and all(re.match(r"^(request|response|category)\s*[:：]", x, re.IGNORECASE) for x in lines):
        return "\n".join(lines), reasoning
    raise AnswerParseError("no <answer> block in the model output", text)


def parse_answer(
    text: str,
    modality: Modality | str,
    taxonomy: Taxonomy | None = None,
    *,
    judge: str = "",
) -> Verdict:
    """Read a ProGuard answer into a Verdict.

    Accepts ``<think>``/``<thinking>``/no reasoning, a missing ``</answer>`` (servers cut at
    the stop string), case and spacing variations, markdown emphasis, ``C3S2``, ``C3``,
    ``C3S2: Fraud and Scams``, ``None``, and free-text out-of-policy names. Anything it
    cannot read raises ``AnswerParseError`` with the raw text; it never guesses "safe".
    """
    if not isinstance(text, str):
        raise AnswerParseError(f"model output is {type(text).__name__}, not text", repr(text))
    mod = Modality(modality)
    tax = taxonomy or Taxonomy.default()
    body, reasoning = _answer_body(text)
    fields = _fields(body, text)
    request = _label(fields.get("request"), "request", text)
    response: Label | None = None
    if mod != Modality.IMAGE:
        response = _label(fields.get("response"), "response", text)
    unsafe = request == "unsafe" or response == "unsafe"

    cat_raw = fields.get("category")
    category_id = category_name = subcategory_name = description = None
    in_policy = True
    out_of_policy = False
    if cat_raw is not None:
        value = cat_raw.strip().strip("\"'").rstrip(".").strip()
        if value.lower() not in _NONE_VALUES:
            m = _CAT_ID_RE.match(value)
            entry = None
            if m:
                category_id = normalize_id(m.group(1))
                entry = tax.find(category_id or "")
                in_policy = entry is not None
            else:
                named = tax.find(value)
                if named is not None:  # the model wrote a policy name instead of its id
                    category_id, entry = named.id, named
                else:
                    description = value[:MAX_DESCRIPTION_CHARS]
                    out_of_policy = unsafe
            if entry is not None:
                if isinstance(entry, Category):
                    category_name = entry.name
                else:
                    category_name = tax.category_of(entry.id).name
                    subcategory_name = entry.name
    return Verdict(
        modality=mod,
        request=request,
        response=response,
        category_id=category_id,
        category_name=category_name,
        subcategory_name=subcategory_name,
        is_out_of_policy=out_of_policy,
        description=description,
        category_in_policy=in_policy,
        reasoning=reasoning,
        raw=text,
        judge=judge,
    )


def format_answer(
    modality: Modality | str,
    request: Label,
    response: Label | None = None,
    category: str | None = None,
    reasoning: str = "...",
    think_tag: str = "think",
) -> str:
    """The canonical answer text (used by scripted backends, data exports and tests)."""
    mod = Modality(modality)
    lines = [f"<{think_tag}>\n{reasoning}\n</{think_tag}>", "<answer>", f"Request:{request}"]
    if mod != Modality.IMAGE:
        lines.append(f"Response:{response or 'safe'}")
    lines.append(f"Category:{category or 'None'}")
    lines.append("</answer>")
    return "\n".join(lines)


__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "ModalityTemplate",
    "PromptTemplates",
    "RenderedPrompt",
    "format_answer",
    "neutralize",
    "parse_answer",
    "released_prompts",
    "render",
    "render_messages",
    "render_user_text",
    "system_prompt",
]
