"""Build the lite head's labelled examples from shared/data/public plus generated data.

Each example is a ``LiteExample``: a user text, an optional agent text, a request label,
a response label (either may be ``None`` = not labelled, so that task ignores it), a
subcategory (or an out-of-policy class) for unsafe content, its source and a group key.
Examples sharing a group key always land in the same split (templates, near-duplicates).

Labelling rules live in ``sources.yaml`` beside this file; docs/lite_dataset_card.md
describes them. No public benchmark test set is read here.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from . import responses, synth

HERE = Path(__file__).resolve().parent
MAPPING_FILE = HERE / "sources.yaml"

#: explicit toxicity markers: an RTP opening is used only if it contains one
TOXIC_MARKERS = re.compile(
    r"\b(fuck\w*|shit\w*|bitch\w*|cunt|dick\w*|cock\w*|pussy|whore\w*|slut\w*|hoes?|asshole\w*|bastard\w*|"
    r"n[i1]gg\w*|fag\w*|retard\w*|kike|spic|chink|tranny|rape\w*|raping|kill (you|him|her|them|all|every)\w*|"
    r"murder\w*|shoot (you|him|her|them)|behead\w*|porn\w*|masturbat\w*|orgasm\w*|boobs?|tits?|anal|vaginal|"
    r"genitals?|penis|dildo|blowjob|cum\w*|horny|sexy|naked|nude|stupid|idiot\w*|moron\w*|dumb\w*|ugly|"
    r"disgusting|scum|trash|pig|vermin|subhuman|terrorists?|savages?|thugs?|jerk|loser\w*|hate)\b",
    re.IGNORECASE,
)

#: an assistant turn that declines
REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i (can(no|')t|won'?t|will not|don'?t think i (can|should))|i'?m not (comfortable|able|going to)|"
    r"(that|this|it) (is|would be|sounds) (illegal|wrong|dangerous|harmful|unethical|not ok)|i do not (feel comfortable|think)|"
    r"i'?d (rather|prefer) not|please don'?t|that'?s not (a good|ok|okay|appropriate)|i (can'?t|cannot) help|"
    r"not (something|anything) i|i (would|will) not|i don'?t (want to|feel comfortable)|i'?m not programmed)",
    re.IGNORECASE,
)


@dataclass
class LiteExample:
    user: str
    agent: str | None
    request: int | None  # 1 unsafe, 0 safe, None not labelled
    response: int | None
    category: str | None  # subcategory id or "oop:<slug>" for the unsafe side
    source: str
    group: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- helpers
def _ascii_quotes(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')


def normalize_text(text: str) -> str:
    """Key for exact-duplicate removal: case, accents, punctuation and spacing folded."""
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    t = re.sub(r"[^a-z0-9]+", " ", t)
    return " ".join(t.split())


class Rules:
    """The mapping file, compiled."""

    def __init__(self, path: Path = MAPPING_FILE) -> None:
        self.raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.category_rules = [(sub, re.compile(rx, re.IGNORECASE)) for sub, rx in self.raw["category_rules"]]
        self.harm_rules = [re.compile(rx, re.IGNORECASE) for rx in self.raw["harm_rules"]]
        self.oop_classes: dict[str, str] = dict(self.raw["out_of_policy_classes"])

    def topic(self, text: str) -> str | None:
        text = _ascii_quotes(text)
        for sub, rx in self.category_rules:
            if rx.search(text):
                return sub
        return None

    def harmful(self, text: str) -> bool:
        text = _ascii_quotes(text)
        return any(rx.search(text) for rx in self.harm_rules)

    def donotanswer_label(self, intents: list[str], text: str) -> tuple[int | None, str | None]:
        """(request label, subcategory) for a Do-Not-Answer prompt; (None, None) to drop it."""
        cfg = self.raw["donotanswer"]
        mapped = {i: cfg["intents"].get(i, "drop") for i in intents}
        harmful = [i for i in cfg["priority"] if i in mapped and mapped[i] not in ("safe", "drop")]
        if harmful:
            return 1, self.topic(text) or mapped[harmful[0]]
        if "drop" in mapped.values():
            return None, None
        return 0, None


def hh_turns(transcript: str) -> list[tuple[str, str]]:
    parts = re.split(r"\n\n(Human|Assistant): ", transcript)
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def hh_context_request(turns: list[tuple[str, str]], upto: int, max_context: int = 2) -> str:
    """The user side as the engine folds a transcript (request_from_messages): earlier turns as
    labelled context, the last human turn at the end."""
    labels = {"Human": "earlier user turn", "Assistant": "earlier agent turn"}
    ctx = turns[max(0, upto - max_context) : upto]
    pieces = [f"[{labels[r]}]\n{t}" for r, t in ctx if t]
    pieces.append(turns[upto][1])
    return "\n\n".join(pieces)


def is_compliant(answer: str) -> bool:
    a = _ascii_quotes(answer.strip())
    return len(a) > 80 and not REFUSAL.search(a) and not a.endswith("?")


# ---------------------------------------------------------------------------- sources
def load_donotanswer(root: Path, rules: Rules) -> list[tuple[str, int, str | None]]:
    out = []
    for f in sorted((root / "donotanswer").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            label, cat = rules.donotanswer_label(d["intents"], d["prompt"])
            if label is not None:
                out.append((d["prompt"].strip(), label, cat))
    return out


def load_rtp(root: Path, rules: Rules) -> list[tuple[str, str]]:
    out = []
    for name, cat in rules.raw["realtoxicityprompts"]["files"].items():
        for line in (root / "realtoxicityprompts" / name).read_text(encoding="utf-8").splitlines():
            t = line.strip()
            if t and TOXIC_MARKERS.search(t):
                out.append((t, cat))
    return out


def load_jailbreaks(root: Path) -> list[str]:
    data = json.loads((root / "jailbreaks" / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    return [x.strip() for x in data if isinstance(x, str) and len(x.strip()) > 40]


def load_alpaca(root: Path) -> list[tuple[str, str | None]]:
    out = []
    for line in (root / "alpaca" / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        inst = d["instances"][0] if d.get("instances") else {}
        text = d["instruction"].strip()
        if inst.get("input"):
            text = f"{text}\n\n{inst['input'].strip()}"
        out.append((text, (inst.get("output") or "").strip() or None))
    return out


def load_hh(root: Path) -> list[dict[str, str]]:
    with gzip.open(root / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ---------------------------------------------------------------------------- build
def build_examples(data_root: str | Path, *, seed: int = 0) -> list[LiteExample]:
    """All labelled examples, exact duplicates removed (first occurrence kept)."""
    root = Path(data_root)
    rules = Rules()
    rng = random.Random(seed)
    ex: list[LiteExample] = []

    # Do-Not-Answer: requests; each unsafe one also gets a refused (safe) and a complied
    # (unsafe) response, each safe one a helpful answer, so the response head sees both.
    for i, (text, label, cat) in enumerate(load_donotanswer(root, rules)):
        g = f"dna:{i}"
        ex.append(LiteExample(text, None, label, None, cat, "donotanswer", g))
        if label:
            ex.append(LiteExample(text, synth.refusal(rng), 1, 0, cat, "donotanswer+refusal", g))
            ex.append(LiteExample(text, synth.compliant_answer(text, rng), 1, 1, cat, "donotanswer+compliance", g))
        else:
            ex.append(LiteExample(text, synth.benign_answer(text, rng), 0, 0, None, "donotanswer+answer", g))

    # RealToxicityPrompts: toxic openings as user text, and again as the agent's output
    # after a harmless request (same group: both copies land in one split).
    for i, (text, cat) in enumerate(load_rtp(root, rules)):
        ex.append(LiteExample(text, None, 1, None, cat, "rtp", f"rtp:{i}"))
        carrier = rng.choice(synth.GENERIC_USER + responses.CARRIERS)
        ex.append(LiteExample(carrier, text, 0, 1, cat, "rtp-as-response", f"rtp:{i}"))
    for i, text in enumerate(synth.GENERIC_USER):  # the harmless requests above, alone
        ex.append(LiteExample(text, None, 0, None, None, "synth-benign", f"generic-user:{i}"))

    # In-the-wild jailbreak templates: unsafe, out of policy (no taxonomy entry fits).
    oop = rules.raw["jailbreaks"]["category"]
    for i, text in enumerate(load_jailbreaks(root)):
        ex.append(LiteExample(text, None, 1, None, oop, "jailbreaks", f"jb:{i}"))
        if i % 3 == 0:
            ex.append(LiteExample(text, synth.refusal(rng), 1, 0, oop, "jailbreaks+refusal", f"jb:{i}"))

    # Alpaca seed tasks: benign requests with their reference answers.
    for i, (text, answer) in enumerate(load_alpaca(root)):
        ex.append(LiteExample(text, None, 0, None, None, "alpaca", f"alpaca:{i}"))
        if answer:
            ex.append(LiteExample(text, answer, 0, 0, None, "alpaca+answer", f"alpaca:{i}"))

    # hh-rlhf red-team openings: unsafe when a harm rule matches (else left out); response
    # pairs where the chosen reply refuses and the rejected one complies.
    for i, row in enumerate(load_hh(root)):
        chosen, rejected = hh_turns(row["chosen"]), hh_turns(row["rejected"])
        if not chosen or chosen[0][0] != "Human":
            continue
        g = f"hh:{i}"
        first = chosen[0][1]
        harmful_first = rules.harmful(first)
        if harmful_first:
            ex.append(LiteExample(first, None, 1, None, rules.topic(first), "hh-rlhf", g))
        if len(chosen) < 2 or len(rejected) < 2 or chosen[-1][0] != "Assistant" or rejected[-1][0] != "Assistant":
            continue
        ca, ra = chosen[-1][1], rejected[-1][1]
        if ca == ra:
            continue
        user = hh_context_request(chosen, len(chosen) - 2)
        humans = " ".join(t for r, t in chosen if r == "Human")
        harmful_conv = harmful_first or rules.harmful(humans)
        if harmful_conv and REFUSAL.search(_ascii_quotes(ca)):
            ex.append(LiteExample(user, ca, None, 0, None, "hh-rlhf+chosen-refusal", g))
        if harmful_first and is_compliant(ra):
            # the red-teamer opened with a harmful request and the less harmless reply went along
            cat = rules.topic(chosen[-2][1]) or rules.topic(humans + " " + ra)
            ex.append(LiteExample(user, ra, None, 1, cat, "hh-rlhf+rejected-compliance", g))

    # Generated: benign everyday and contrast requests (with answers), unsafe coverage.
    for s in synth.benign_everyday(rng):
        ex.append(LiteExample(s.text, None, 0, None, None, "synth-benign", s.template))
        if rng.random() < 0.35:
            ex.append(LiteExample(s.text, synth.benign_answer(s.text, rng), 0, 0, None, "synth-benign+answer", s.template))
    for s in synth.benign_contrast(rng):
        ex.append(LiteExample(s.text, None, 0, None, None, "synth-contrast", s.template))
        ex.append(LiteExample(s.text, synth.benign_answer(s.text, rng), 0, 0, None, "synth-contrast+answer", s.template))
    for s in synth.unsafe_coverage(rng):
        ex.append(LiteExample(s.text, None, 1, None, s.category, "synth-coverage", s.template))
        ex.append(LiteExample(s.text, synth.compliant_answer(s.text, rng), 1, 1, s.category,
                              "synth-coverage+compliance", s.template))
        ex.append(LiteExample(s.text, synth.refusal(rng), 1, 0, s.category, "synth-coverage+refusal", s.template))

    # Generated responses whose label is carried by their own content (responses.py), with
    # the response label decorrelated from the request label; more requests around them.
    unsafe_reqs = [(e.user, e.category, e.group) for e in ex
                   if e.agent is None and e.request == 1 and e.source in ("donotanswer", "hh-rlhf", "synth-coverage")]
    for k, text in enumerate(responses.CARRIERS):
        ex.append(LiteExample(text, None, 0, None, None, "synth-benign", f"carrier:{k}"))
    for p in [*responses.wrapped_unsafe_requests(rng), *responses.contrast_requests(rng),
              *responses.response_pairs(rng, unsafe_reqs)]:
        ex.append(LiteExample(p.user, p.agent, p.request, p.response, p.category, p.source, p.group))

    return dedupe(ex)


def dedupe(examples: Iterable[LiteExample]) -> list[LiteExample]:
    """Drop exact duplicates by normalized (user, agent); on conflicting labels keep neither."""
    by_key: dict[tuple[str, str], LiteExample] = {}
    conflicts: set[tuple[str, str]] = set()
    for e in examples:
        key = (normalize_text(e.user), normalize_text(e.agent or ""))
        prev = by_key.get(key)
        if prev is None:
            by_key[key] = e
        elif (prev.request, prev.response) != (e.request, e.response) and key not in conflicts:
            if prev.request is not None and e.request is not None and prev.request != e.request:
                conflicts.add(key)
    return [e for k, e in by_key.items() if k not in conflicts]


def summary(examples: list[LiteExample]) -> dict[str, Any]:
    src = Counter(e.source for e in examples)
    req = Counter(e.request for e in examples if e.request is not None)
    resp = Counter(e.response for e in examples if e.response is not None)
    cats = Counter(e.category for e in examples if e.category and (e.request == 1 or e.response == 1))
    return {
        "examples": len(examples),
        "by_source": dict(sorted(src.items())),
        "request_labels": {"safe": req.get(0, 0), "unsafe": req.get(1, 0)},
        "response_labels": {"safe": resp.get(0, 0), "unsafe": resp.get(1, 0)},
        "categories": dict(sorted(cats.items())),
    }


__all__ = ["LiteExample", "Rules", "build_examples", "dedupe", "normalize_text", "summary"]
