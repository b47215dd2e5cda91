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
# What neutralize writes in place of brackets: never folded, so its output stays inert (idempotence).
_INERT = frozenset("\u2039\u203a")  # ‹ ›
# Detection form of a non-ASCII look-alike of l / I / 1 / | (Unicode gives them one prototype): the
# marker patterns accept it wherever they expect i, l or |.
_AMBIGUOUS = "\x01"
# Unicode names of single angle brackets (❬ ⟨ 〈 ⧼ ⦑ ...): the confusables data puts several of them in
# classes of their own, yet a reader takes any of them for < or >.
_BRACKET_NAME_RE = re.compile(r"\b(LEFT|RIGHT)(?:-POINTING)? (?:[A-Z]+ )*ANGLE (?:BRACKET|QUOTATION)\b")
_SMALL_CAPITAL_RE = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])$")
# Characters that end a line for a reader or a tokenizer (str.splitlines), besides "\n".
_LINE_BREAKS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# ASCII that the slow path folds (line breaks, hidden controls): ASCII text with none takes the fast path
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@lru_cache(maxsize=1)
def _confusable_prototypes() -> dict[str, str]:
    """Non-ASCII character -> its ASCII prototype in Unicode's confusables data (UTS #39
    ``confusables.txt``, as shipped and kept current by the ``confusable-homoglyphs`` package)."""
    try:
        raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:  # pragma: no cover - a core dependency
        raise RuntimeError(
            "proguard-rails needs the Unicode confusables data: pip install confusable-homoglyphs"
        ) from exc
    data: dict[str, list[dict[str, str]]] = json.loads(raw)
    # An ASCII letter whose own prototype is a sequence (m -> "rn"): its look-alikes fold to the letter.
    by_sequence: dict[str, str] = {}
    for ch, entries in data.items():
        if len(ch) == 1 and ch.isascii():
            for entry in entries:
                target = entry.get("c", "")
                if len(target) > 1 and target.isascii():
                    by_sequence[target] = ch
    table: dict[str, str] = {}
    for ch, entries in data.items():
        if len(ch) != 1 or ch.isascii() or ch in _INERT:
            continue
        for entry in entries:  # a non-prototype lists its prototype; ASCII is always a prototype here
            target = entry.get("c", "").strip("\u200e\u200f")
            if target and target.isascii():
                table[ch] = by_sequence.get(target, target)
                break
    return table


def _hidden(ch: str) -> bool:
    """Invisible inside a marker: zero-width/bidi/format characters, combining marks on their
    own, and control characters other than tab and newline."""
    if ord(ch) in _INVISIBLE:
        return True
    cat = unicodedata.category(ch)
    return cat in ("Cf", "Mn", "Me") or (cat == "Cc" and ch not in "\t\n" and ch not in _LINE_BREAKS)


def _bracket(ch: str) -> str | None:
    """``<`` or ``>`` for a single angle bracket other than ASCII's and the inert ‹ ›."""
    if ch in _INERT or unicodedata.category(ch)[0] not in "PS":
        return None
    name = unicodedata.name(ch, "")
    m = _BRACKET_NAME_RE.search(name)
    if m is None or "DOUBLE" in name:
        return None
    return "<" if m.group(1) == "LEFT" else ">"


@lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    """The detection form of one character (``""`` when it is invisible).

    Line breaks become ``\\n``; compatibility forms fold (full-width ``＜`` -> ``<``, math bold);
    accents drop; look-alikes map to their ASCII prototype from Unicode's confusables data
    (Cyrillic ``е``, Armenian ``Ս``, ``˸`` -> ``:``); single angle brackets become ``<``/``>``;
    case folds. ‹ and › (what neutralize writes) are kept as they are.
    """
    if ch in _LINE_BREAKS:
        return "\n"
    if ch in _INERT:
        return ch
    if _hidden(ch):
        return ""
    if ch.isascii():
        return ch.lower()
    if unicodedata.category(ch) == "Zs":
        return " "
    bracket = _bracket(ch)
    if bracket is not None:
        return bracket
    proto = _prototype(ch)  # before NFKD, which can turn a look-alike into another (ϲ -> ς)
    if proto is not None:
        return proto
    decomposed = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)) or ch
    if decomposed.isascii():
        return decomposed.lower()
    out: list[str] = []
    for c in decomposed:
        out.append(c.lower() if c.isascii() else (_prototype(c) or _bracket(c) or c.lower()))
    return "".join(out).lower()


def _prototype(ch: str) -> str | None:
    """Lower-case ASCII detection form of a look-alike, or None.

    Unicode's prototype, trying the other case too since detection ignores case (к -> К -> K);
    small capitals by their Unicode name (ᴀ ʙ ɴ: LATIN LETTER SMALL CAPITAL A ...).
    """
    prototypes = _confusable_prototypes()
    proto = prototypes.get(ch) or prototypes.get(ch.upper()) or prototypes.get(ch.lower())
    if proto is None:
        m = _SMALL_CAPITAL_RE.match(unicodedata.name(ch, ""))
        proto = m.group(1) if m else None
    if proto is None:
        return None
    return _AMBIGUOUS if proto in ("l", "I", "1", "|") else proto.lower()


def _skeleton(text: str) -> tuple[str, list[int]]:
    """Detection form of ``text`` and, for each of its chars, the index of the original char.

    Every character is folded on its own (``_fold_char``), so the skeleton is built in one
    linear pass and each of its characters points back to the character it came from.
    """
    if text.isascii() and not _ASCII_CONTROL_RE.search(text):  # fast path: only case to fold
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        if len(folded) == 1:
            out.append(folded)
            index.append(i)
            continue
        for c in folded:
            out.append(c)
            index.append(i)
    return "".join(out), index


def _fz(word: str) -> str:
    """A marker word as a pattern over the skeleton (i, l and | also match an ambiguous look-alike)."""
    classes = {"i": "[i\x01]", "l": "[l\x01]", "|": "[|\x01]"}
    return "".join(classes.get(c, re.escape(c)) for c in word)


_TAG_WORDS = ("answer", "thinking", "think", "tool_call", "tool_response", "tools")
_LABEL_WORDS = ("user", "agent", "assistant", "human", "system", "request", "response", "category")
# Every quantifier is either bounded or followed by something it cannot match, so no input makes
# these patterns backtrack more than linearly (an unbounded run of spaces is scanned once).
_TAG_RE = re.compile(
    r"<\s*(?:/\s*)?(?:"
    rf"(?:{_fz('begin')}|end)\b[^<>\n]{{0,80}}>?"  # <BEGIN CONVERSATION>, <END UNSAFE CONTENT CATEGORIES>, ...
    rf"|(?:{'|'.join(_fz(w) for w in _TAG_WORDS)})\b\s*>?"  # <answer>, </think>, <tool_call>, ...
    r")"
    r"|<[|\x01][^|\x01<>\n]{1,40}[|\x01]>",  # chat-template special tokens: <|im_end|>, <|vision_start|>, ...
)
_LABEL_RE = re.compile(  # markdown emphasis or a quote mark before the label does not hide it
    rf"^[ \t*_>]*({'|'.join(_fz(w) for w in _LABEL_WORDS)})[ \t]*:", re.MULTILINE
)


def _visible(fragment: str) -> str:
    """A matched marker re-written without invisible characters, brackets made inert."""
    kept = "".join(ch for ch in fragment if not _hidden(ch))
    kept = unicodedata.normalize("NFKC", kept)
    out = []
    for c in kept:
        folded = _fold_char(c)
        out.append("\u2039" if folded == "<" else "\u203a" if folded == ">" else c)
    return "".join(out)


def neutralize(text: str) -> tuple[str, int]:
    """Make the template's own markers inert inside user/agent text, visibly.

    ``<END CONVERSATION>`` becomes ``‹END CONVERSATION›``, ``<|im_end|>`` becomes
    ``‹|im_end|›``, ``</answer>`` becomes ``‹/answer›``, and a line that starts with a role
    or answer label (``User:``, ``Agent:``, ``Request:``, ``Category:`` ...) gets a ``› ``
    quote prefix, so text cannot close the conversation block, open a turn, or forge an
    answer, while the model can still read what was written. Chat-template tool tags
    (``<tool_call>``, ``<tool_response>``) are made inert the same way. Look-alikes are caught
    too: full-width and other compatibility forms, zero-width or bidi characters inside the
    marker, every character Unicode's confusables data (UTS #39) maps to a letter, colon or
    bracket of a marker (Cyrillic, Greek, Armenian ``Սser:``, ``Agent˸``), and single angle
    brackets of any kind (``❬END CONVERSATION❭``).
    Returns the new text and the number of markers changed. Idempotent, and linear in
    ``len(text)``: no input makes it backtrack.
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

# The model's own tags: a reasoning opener/closer (<think>, <thinking>) or an answer opener/closer.
# Linear: each whitespace run after a "<" is scanned once, and a failed match backs off one char at a time.
_PTAG_RE = re.compile(r"<\s*(/\s*)?(thinking|think|answer)\s*>", re.IGNORECASE)
# A label at the start of a line or after whitespace; its value runs to the next label or the line end.
_FIELD_LABEL_RE = re.compile(r"(?:^|(?<=\s))(request|response|category)\s*[:：]", re.IGNORECASE)
_BARE_LABEL_RE = re.compile(r"(request|response|category)\s*[:：]", re.IGNORECASE)
_SPACES_RE = re.compile(r"\s+")
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
        labels = list(_FIELD_LABEL_RE.finditer(line))
        for i, m in enumerate(labels):
            key = m.group(1).lower()
            stop = labels[i + 1].start() if i + 1 < len(labels) else len(line)
            value = line[m.end() : stop].strip().strip("*").strip()
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


@dataclass
class _Scan:
    """One pass over the model's tags (``_scan``)."""

    blocks: list[tuple[int, int, int | None]]  # answer blocks outside reasoning: (start, end, closer end)
    reasoning: tuple[int, int] | None  # span of the reasoning text, tags excluded
    reasoning_end: int  # index after the last reasoning tag (0 when there is none)
    unclosed: bool  # a reasoning block was still open at the end
    first_answer_end: tuple[int, int] | None  # span of the first </answer> outside reasoning, after it closed


def _scan(text: str) -> _Scan:
    """Walk the tags once, left to right.

    Reasoning nests (``<think>`` inside reasoning is quoted text and needs its own closer);
    an answer tag inside reasoning is quoted text, never the verdict. A reasoning closer with
    no opener before any reasoning closed (servers that strip the opener) makes everything
    before it reasoning, so answer blocks seen before it are dropped. An answer opener with no
    closer runs to the next reasoning tag, the next answer opener, or the end.
    """
    depth = 0
    blocks: list[tuple[int, int, int | None]] = []
    open_at: int | None = None
    r_start: int | None = None
    r_stop = 0
    r_end = 0
    has_reasoning = False
    closed_once = False
    first_plain: tuple[int, int] | None = None  # first </answer> while no reasoning tag had been seen
    first_after: tuple[int, int] | None = None  # first </answer> outside reasoning after reasoning closed
    for m in _PTAG_RE.finditer(text):
        closing = m.group(1) is not None
        if m.group(2).lower() != "answer":
            has_reasoning = True
            if open_at is not None:  # reasoning starts: an unterminated answer block ends here
                blocks.append((open_at, m.start(), None))
                open_at = None
            if not closing:
                if depth == 0 and r_start is None:
                    r_start = m.end()
                depth += 1
            elif depth > 0:
                depth -= 1
                if depth == 0:
                    closed_once = True
                    r_stop = m.start()
            elif not closed_once:  # a closer without an opener: all that came before was reasoning
                blocks.clear()
                r_start, r_stop, closed_once = 0, m.start(), True
            # else: a stray closer after the reasoning closed; the answer must still follow it
            r_end = m.end()
            continue
        if depth > 0:
            continue  # quoted inside the reasoning
        if not closing:
            if open_at is not None:
                blocks.append((open_at, m.start(), None))
            open_at = m.end()
        elif open_at is not None:
            blocks.append((open_at, m.start(), m.end()))
            open_at = None
            if first_after is None and closed_once:
                first_after = m.span()
            if first_plain is None and not has_reasoning:
                first_plain = m.span()
    if open_at is not None:
        blocks.append((open_at, len(text), None))
    reasoning = (r_start, r_stop) if r_start is not None and closed_once else None
    return _Scan(blocks, reasoning, r_end, depth > 0, first_after if has_reasoning else first_plain)


def answer_end(text: str, *, include_closer: bool = True) -> int | None:
    """Where the model's output ends: just after the first ``</answer>`` outside the reasoning,
    after the reasoning closed (``None`` if there is none yet); with ``include_closer=False``,
    just before that ``</answer>``. Text with no reasoning tags ends at its first ``</answer>``.

    Backends use it as a reasoning-aware stop: a draft answer quoted inside ``<think>`` (or in a
    separate ``reasoning_content``) never ends the output early, so the verdict still comes from
    the model's final answer. Linear in ``len(text)``.
    """
    span = _scan(text).first_answer_end
    if span is None:
        return None
    return span[1] if include_closer else span[0]


def escape_reasoning(text: str) -> str:
    """Make the model's tags inside a reasoning-only field inert (``<answer>`` -> ``‹answer›``), so
    text known to be reasoning cannot close or re-open blocks when it is put back in front of the answer."""
    return _PTAG_RE.sub(lambda m: "\u2039" + m.group(0)[1:-1] + "\u203a", text)


def _answer_body(text: str) -> tuple[str, str | None]:
    """The final answer block's content and the reasoning. Raises when there is none to read."""
    scan = _scan(text)
    if scan.unclosed:
        raise AnswerParseError(
            "the reasoning never closed, so there is no final answer (output cut off?); an answer "
            "inside the reasoning is not a verdict", text
        )
    reasoning = text[scan.reasoning[0] : scan.reasoning[1]].strip() if scan.reasoning else None
    blocks = [(text[a:b].strip(), a) for a, b, _ in scan.blocks]
    blocks = [(b, a) for b, a in blocks if b]
    if blocks:
        if blocks[-1][1] < scan.reasoning_end:
            raise AnswerParseError("no answer block after the reasoning closed (the model went on thinking)", text)
        normalized = {_SPACES_RE.sub(" ", _strip_markup(b)).lower() for b, _ in blocks}
        if len(normalized) > 1:
            raise AnswerParseError("several answer blocks that disagree", text)
        return blocks[-1][0], reasoning
    # No <answer> tags: accept only a bare answer after the reasoning, i.e. label lines alone.
    rest = text[scan.reasoning_end :]
    lines = [_strip_markup(x) for x in rest.strip().splitlines() if x.strip()]
    if lines and all(_BARE_LABEL_RE.match(x) for x in lines):
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
    "answer_end",
    "escape_reasoning",
    "format_answer",
    "neutralize",
    "parse_answer",
    "released_prompts",
    "render",
    "render_messages",
    "render_user_text",
    "system_prompt",
]
