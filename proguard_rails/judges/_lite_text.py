"""Text handling for the lite judge: token windows, cheap de-obfuscation, language guard.

Pure Python, no model. Every function here runs in time linear in the length of its input
(the regexes have no nested quantifiers and are applied once), and the extra texts it
produces are bounded in number and length, so a hostile input cannot make a check slow.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Iterable

# ============================================================================ windows
#: tokens per window (with [CLS] and [SEP]); the model was fine-tuned on windows of this size
WINDOW_TOKENS = 64
#: step between window starts: consecutive windows overlap by WINDOW_TOKENS - 2 - WINDOW_STRIDE tokens,
#: so a harmful sentence of up to that many tokens is always whole inside one window
WINDOW_STRIDE = 40


def window_starts(n_tokens: int, body: int = WINDOW_TOKENS - 2, stride: int = WINDOW_STRIDE) -> list[int]:
    """Start offsets of the windows covering ``n_tokens`` tokens: every token is in a window.

    Cost bound: ``1 + ceil(max(0, n - body) / stride)`` windows, i.e. about one window per
    ``stride`` tokens (one per ~170 characters of English); a text at the engine's
    ``max_chars`` limit (24,000 characters, ~6,000 tokens) gives at most ~150 windows of
    64 tokens, about 1.6 times the model work of reading the text once.
    """
    if n_tokens <= body:
        return [0]
    starts = list(range(0, n_tokens - body, stride))
    starts.append(n_tokens - body)
    return starts


# ============================================================================ de-obfuscation
#: at most this many decoded variants per text, each at most this many characters
MAX_VARIANTS = 4
MAX_VARIANT_CHARS = 4000

_B64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_B64URL_RUN = re.compile(r"[A-Za-z0-9_-]{24,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}[\s:]?){8,}")
_HEX_ESC = re.compile(r"(?:\\x[0-9a-fA-F]{2}){6,}")
_WORD = re.compile(r"[A-Za-z]+")
_LEET_WORD = re.compile(r"[A-Za-z0-9@$!|+]{3,}")
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!|+]+")

# common English words: rot13 and leetspeak decoding is kept only when it reveals English
_EN_COMMON = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she or "
    "an will my one all would there their what so up out if about who get which go me when make can like time no just "
    "him know take people into year your good some could them see other than then now look only come its over think "
    "also back after use two how our work first well way even new want because any these give day most us is are was "
    "were how why where kill make bomb steal hack money gun drug poison someone write tell give help best way".split()
)


def _readable_share(text: str) -> float:
    words = _WORD.findall(text.casefold())
    if not words:
        return 0.0
    return sum(w in _EN_COMMON for w in words) / len(words)


def _printable(data: bytes) -> str | None:
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not s:
        return None
    ok = sum(ch.isprintable() or ch in "\n\t\r" for ch in s)
    letters = sum(ch.isalpha() for ch in s)
    if ok / len(s) < 0.95 or letters / len(s) < 0.5:
        return None
    return s


def _decode_base64(text: str) -> list[str]:
    out = []
    for rx, alt in ((_B64_RUN, None), (_B64URL_RUN, b"-_")):
        for m in rx.finditer(text):
            run = m.group(0)
            pad = run + "=" * (-len(run.rstrip("=")) % 4) if "=" not in run else run
            try:
                raw = base64.b64decode(pad, altchars=alt, validate=True) if alt is None else \
                    base64.urlsafe_b64decode(pad)
            except (binascii.Error, ValueError):
                continue
            s = _printable(raw)
            if s:
                out.append(s)
            if len(out) >= MAX_VARIANTS:
                return out
    return out


def _decode_hex(text: str) -> list[str]:
    out = []
    for rx in (_HEX_RUN, _HEX_ESC):
        for m in rx.finditer(text):
            digits = re.sub(r"[^0-9a-fA-F]", "", m.group(0).replace("\\x", ""))
            if len(digits) % 2:
                digits = digits[:-1]
            try:
                s = _printable(bytes.fromhex(digits))
            except ValueError:
                continue
            if s:
                out.append(s)
            if len(out) >= MAX_VARIANTS:
                return out
    return out


def _rot13(text: str) -> str | None:
    if len(_WORD.findall(text)) < 3:
        return None
    decoded = codecs.decode(text, "rot13")
    return decoded if _readable_share(decoded) > max(0.3, 2 * _readable_share(text)) else None


_LEET_MAP = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "|": "l", "0": "o", "5": "s", "$": "s",
                           "7": "t", "+": "t", "8": "b", "9": "g"})


def _leet(text: str) -> str | None:
    mixed = 0
    for m in _LEET_WORD.finditer(text):
        w = m.group(0)
        if any(c.isalpha() for c in w) and any(not c.isalpha() for c in w):
            mixed += 1
    if mixed < 2:
        return None

    def undo(m: re.Match[str]) -> str:
        w = m.group(0)
        d = w.translate(_LEET_MAP)
        # a token with no letter ("4", "70") is decoded only where it becomes a common word
        return d if any(c.isalpha() for c in w) or d.casefold() in _EN_COMMON else w

    decoded = _LEET_TOKEN.sub(undo, text)
    return decoded if decoded != text and _readable_share(decoded) > _readable_share(text) else None


# Look-alike letters: NFKC folds fullwidth and styled letters; this table folds the Cyrillic and
# Greek letters that look like Latin ones (the attack swaps a few of them into English words).
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y",
    "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "α": "a", "ε": "e", "ι": "i", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "ν": "v", "κ": "k", "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})


def fold_lookalikes(text: str) -> str:
    """NFKC plus the Cyrillic/Greek look-alike table, and zero-width characters removed."""
    t = unicodedata.normalize("NFKC", text)
    t = t.translate(_CONFUSABLES)
    return t.replace("\u200b", "").replace("\u200c", "").replace("\u200d", "").replace("\u2060", "").replace("\ufeff", "")


def _mixed_script_words(text: str) -> int:
    n = 0
    for w in text.split():
        has_latin = has_other = False
        for ch in w:
            if ch.isalpha():
                if ch.isascii():
                    has_latin = True
                elif ord(ch) >= 0x370:
                    has_other = True
        n += has_latin and has_other
    return n


def decoded_variants(text: str) -> list[tuple[str, str]]:
    """``[(how, decoded text)]``: what cheap obfuscations in ``text`` decode to (possibly empty).

    Base64 and hex runs are decoded where they give readable text; rot13 and leetspeak are
    undone where that makes the text read as English; look-alike letters and styled or
    zero-width characters are folded. At most ``MAX_VARIANTS`` variants of at most
    ``MAX_VARIANT_CHARS`` characters each; one pass over the text per kind.
    """
    out: list[tuple[str, str]] = []
    folded = text if text.isascii() else fold_lookalikes(text)
    if folded != text and (_mixed_script_words(text) or any(ord(c) > 0xFF00 or 0x1D400 <= ord(c) <= 0x1D7FF
                                                             for c in text) or len(folded) != len(text)):
        out.append(("lookalike", folded))
    base = folded
    out += [("base64", s) for s in _decode_base64(base)]
    out += [("hex", s) for s in _decode_hex(base)]
    r = _rot13(base)
    if r:
        out.append(("rot13", r))
    lt = _leet(base)
    if lt:
        out.append(("leetspeak", lt))
    seen: set[str] = set()
    uniq = []
    for how, s in out:
        s = s[:MAX_VARIANT_CHARS]
        if s not in seen and s != text:
            seen.add(s)
            uniq.append((how, s))
    return uniq[:MAX_VARIANTS]


# ============================================================================ language guard
# The lite model reads English. Text mostly in another script, or written in another Latin-script
# language, is "unreadable": it must not come out as "safe". Script shares are counted over
# letters; Latin-script languages are told apart by their function words, per chunk of text, so
# a foreign passage hidden inside English text is found too.
_SCRIPT_RANGES = [
    (0x0370, 0x03FF, "el"), (0x0400, 0x052F, "ru"), (0x0530, 0x058F, "hy"), (0x0590, 0x05FF, "he"),
    (0x0600, 0x06FF, "ar"), (0x0750, 0x077F, "ar"), (0x0900, 0x097F, "hi"), (0x0980, 0x09FF, "bn"),
    (0x0A00, 0x0DFF, "in"), (0x0E00, 0x0E7F, "th"), (0x10A0, 0x10FF, "ka"), (0x1100, 0x11FF, "ko"),
    (0x3040, 0x30FF, "ja"), (0x3400, 0x4DBF, "zh"), (0x4E00, 0x9FFF, "zh"), (0xAC00, 0xD7AF, "ko"),
    (0xF900, 0xFAFF, "zh"),
]


def _script_of(ch: str) -> str | None:
    o = ord(ch)
    if o < 0x0370:
        return None
    for lo, hi, name in _SCRIPT_RANGES:
        if lo <= o <= hi:
            return name
    return "other"


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are was were to of in that it for you with on this be have not what how can do "
                    "my i me your from at by an or as but if they will would should there their".split()),
    "fr": frozenset("le la les des est sont une un et pour que qui dans avec sur pas vous nous je tu il elle "
                    "du au aux ce cette mon ma mes comment pourquoi faire être avoir plus mais ou très".split()),
    "es": frozenset("el la los las es son una un y para que quien en con por no usted nosotros yo tu del al "
                    "este esta mi cómo como por qué hacer ser tener más pero muy lo se".split()),
    "de": frozenset("der die das und ist sind ein eine für dass wer in mit auf nicht sie wir ich du er es "
                    "den dem des zu von wie warum machen sein haben mehr aber oder sehr mich mir um man aus mein meine meiner "
                    "meinen einen einem damit ob auch noch nur kann soll".split()),
    "it": frozenset("il lo gli la le è sono una un e per che chi con su non voi noi io tu lui lei del della "
                    "come perché fare essere avere più ma molto".split()),
    "pt": frozenset("o os as é são uma um e para que quem em com por não você nós eu tu ele ela do da dos "
                    "das como porque fazer ser ter mais mas muito".split()),
    "nl": frozenset("de het een en is zijn voor dat wie in met op niet jij wij ik hij zij van hoe waarom "
                    "maken hebben meer maar heel".split()),
}
_TOKEN = re.compile(r"\b[^\W\d_]+\b", re.UNICODE)
LANG_NAMES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian", "pt": "Portuguese",
              "nl": "Dutch", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ru": "Cyrillic-script text",
              "ar": "Arabic", "he": "Hebrew", "el": "Greek", "hi": "Hindi", "bn": "Bengali", "th": "Thai",
              "hy": "Armenian", "ka": "Georgian", "in": "an Indic script", "other": "a script it cannot read"}


_MARKS = {"fr": frozenset("éèêàçœùâîô"), "es": frozenset("ñ¿¡áíóú"), "de": frozenset("äöüß"), "pt": frozenset("ãõç"),
          "it": frozenset("àèìòù")}


def _latin_language(words: list[str]) -> str | None:
    counts = {lang: sum(w in sw for w in words) for lang, sw in _STOPWORDS.items()}
    en = counts.pop("en")
    chars = set("".join(words))
    for lang, marks in _MARKS.items():
        counts[lang] += min(2, len(chars & marks))  # accents and umlauts are evidence too
    lang, best = max(counts.items(), key=lambda kv: kv[1])
    # a foreign language needs several of its function words and clearly more than English has
    if best >= 3 and best > 2 * en + 1:
        return lang
    return None


def unreadable_language(text: str, chunk_words: int = 60) -> str | None:
    """A language code when (part of) ``text`` is in a language the English-only lite model cannot
    read, else ``None``. Conservative: a few foreign names or words inside English are not enough."""
    # look-alike letters scattered through English words are an obfuscation, not a language:
    # fold them first, then count the letters still in another script
    letters = foreign = 0
    scripts: dict[str, int] = {}
    for ch in ("" if text.isascii() else fold_lookalikes(text)):  # ASCII text has no other script
        if ch.isalpha():
            letters += 1
            s = _script_of(ch)
            if s is not None:
                foreign += 1
                scripts[s] = scripts.get(s, 0) + 1
    if foreign:
        cjk = sum(v for k, v in scripts.items() if k in ("zh", "ja", "ko"))
        # a CJK character carries a word: a handful is a sentence
        if cjk >= 4 or (foreign >= 8 and foreign / max(letters, 1) >= 0.15):
            return max(scripts.items(), key=lambda kv: kv[1])[0]
    words = [w.casefold() for w in _TOKEN.findall(text)]
    for start in range(0, max(len(words), 1), chunk_words):
        lang = _latin_language(words[start : start + chunk_words])
        if lang:
            return lang
    return None


def language_name(code: str) -> str:
    return LANG_NAMES.get(code, code)


def iter_nonempty(texts: Iterable[str | None]) -> list[str]:
    return [t for t in texts if t and t.strip()]


__all__ = ["MAX_VARIANTS", "WINDOW_STRIDE", "WINDOW_TOKENS", "decoded_variants", "fold_lookalikes", "language_name",
           "unreadable_language", "window_starts"]
