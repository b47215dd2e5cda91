"""The lite judge's corpus: one text, one label, one source each.

The lite model judges a text on its content: a request, a message, a retrieved document,
an answer or an agent action, whatever framing it arrives in. So every training item is a
single text with a binary label (1 unsafe), a subcategory (or an out-of-policy class) when
unsafe, and the SOURCE it comes from. Sources are whole collections (and, for the T0
mixture, families of its underlying datasets); the held-out evaluation leaves whole sources
out, never a random slice of one.

Where items come from:

- ``data.build_examples``: Do-Not-Answer, RealToxicityPrompts, in-the-wild jailbreaks,
  HH-RLHF red-team conversations, Alpaca seeds and the templated families of synth.py and
  responses.py. A request is an item; an answer is an item of its own (judged alone).
- new loaders here: TOXIGEN, AILuminate (English), Davidson tweets, T0 prompts,
  self-instruct user instructions.
- gaps.py: generated families for what the public data misses.

Roles (``SOURCE_ROLES``): ``calib`` sources never reach the shipped model's training; they
are where Platt scaling, the out-of-policy threshold and the cascade threshold are chosen.
Every other source is ``train`` and belongs to one of three folds: the source-held-out
table trains one model per fold without that fold's sources and scores them on those
sources. AILuminate's French prompts are neither: they measure the language guard only.
No public benchmark test set is read here (tests/lite/test_training_data.py checks it).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import gaps
from .data import LiteExample, Rules, build_examples, normalize_text


@dataclass
class TextItem:
    text: str
    label: int  # 1 unsafe, 0 safe
    category: str | None
    source: str  # the collection (held-out unit)
    group: str  # template / record key (near-copies share it)
    kind: str = "request"  # request | answer | action | document | statement

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: source -> role: "calib" (left out of the shipped model's training) or the fold it is held out in
SOURCE_ROLES: dict[str, str] = {
    # calibration sources: never trained on by the shipped model
    "hh-rlhf": "calib", "toxigen": "calib", "self-instruct": "calib", "t0-dialogue": "calib",
    # fold 1
    "donotanswer": "fold1", "davidson": "fold1", "gen-self-harm": "fold1", "gen-agent-actions": "fold1",
    "t0-news": "fold1", "generated-responses": "fold1",
    # fold 2
    "ailuminate": "fold2", "alpaca": "fold2", "gen-implicit-hate": "fold2", "gen-figurative": "fold2",
    "t0-reviews": "fold2", "gen-answers": "fold2",
    # fold 3
    "realtoxicityprompts": "fold3", "jailbreaks": "fold3", "generated-templates": "fold3", "gen-cyber": "fold3",
    "gen-sensitive-benign": "fold3", "t0-knowledge": "fold3",
}
FOLDS = ("fold1", "fold2", "fold3")

_T0_FAMILY = [
    ("t0-dialogue", ("samsum", "dream")),
    ("t0-news", ("cnn", "xsum", "gigaword", "multi_news", "ag_news")),
    ("t0-reviews", ("imdb", "yelp", "app_reviews", "amazon", "rotten")),
]

#: AILuminate hazard -> subcategory (None: not labelled, see docs/lite_dataset_card.md).
#: Specialized-advice prompts (spc_*) ask for financial, health, legal or election advice:
#: harmless to ask, the hazard is an unqualified answer, so they are left out rather than
#: labelled unsafe. Topic rules refine the broad hazards (weapons, non-violent crimes).
AILUMINATE_HAZARDS: dict[str, str | None] = {
    "vcr": "C9S3", "src": "C9S3", "cse": "C11S1", "ssh": "C9S1", "iwp": "C8S1", "ipv": "C1S1", "dfm": "C2S1",
    "ncr": "C6S1", "hte": "C7S1", "prv": "C2S2", "sxc_prn": "C3S3",
    "spc_ele": None, "spc_fin": None, "spc_hlt": None, "spc_lgl": None,
}
_REFINE_HAZARDS = {"iwp", "ncr", "vcr"}


def t0_family(sub: str) -> str:
    for fam, keys in _T0_FAMILY:
        if sub.startswith(keys):
            return fam
    return "t0-knowledge"


def collection_of(example_source: str) -> str:
    """The held-out unit of a ``data.build_examples`` source name."""
    base = example_source.split("+", 1)[0]
    if base.startswith("synth-"):
        return "generated-templates"
    if base.startswith("resp-"):
        return "generated-responses"
    if base.startswith("rtp") or base == "realtoxicityprompts":
        return "realtoxicityprompts"
    return base


# ---------------------------------------------------------------------------- loaders
def load_toxigen(root: Path) -> list[TextItem]:
    out = []
    for line in (root / "toxigen" / "statements.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            hate = d["label"] == "hate"
            out.append(TextItem(d["text"].strip(), int(hate), "C7S1" if hate else None, "toxigen",
                                f"tox:{d.get('group', '')}:{len(out) % 20}", "statement"))
    return out


def _ailuminate_rows(root: Path, locale: str) -> list[dict[str, str]]:
    name = f"airr_official_1.0_demo_{locale}_prompt_set_release.csv"
    with (root / "ailuminate" / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_ailuminate(root: Path, rules: Rules, locale: str = "en_us") -> list[TextItem]:
    out = []
    for i, r in enumerate(_ailuminate_rows(root, locale)):
        cat = AILUMINATE_HAZARDS.get(r["hazard"])
        if cat is None:
            continue
        if r["hazard"] in _REFINE_HAZARDS:
            cat = rules.topic(r["prompt_text"]) or cat
        out.append(TextItem(r["prompt_text"].strip(), 1, cat, "ailuminate" if locale == "en_us" else f"ailuminate-{locale}",
                            f"ail:{r['hazard']}:{i % 10}", "request"))
    return out


def load_davidson(root: Path, rng: random.Random, per_class: int = 1200) -> list[TextItem]:
    """Tweets with a clear majority: hate -> unsafe (C7S1); offensive with all annotators agreeing
    AND a target (an @-mention or "you") -> unsafe harassment (C3S2); neither -> safe. Mere
    profanity without a target is left out: it is not a harm a content guard should block."""
    with (root / "davidson-hate-offensive" / "labeled_data.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    hate, harass, neither = [], [], []
    for r in rows:
        n = int(r["count"])
        text = re.sub(r"(^|\s)RT\s", " ", r["tweet"]).strip()
        text = re.sub(r"&amp;", "&", text)
        text = re.sub(r"https?://\S+", "", text).strip()
        if len(text) < 15:
            continue
        if int(r["hate_speech"]) * 2 > n:
            hate.append(text)
        elif int(r["offensive_language"]) == n and n >= 3 and re.search(r"\byou\b|\byo\b|\bu\b", text, re.I):
            harass.append(text)
        elif int(r["neither"]) == n:
            neither.append(text)
    out: list[TextItem] = []
    for texts, label, cat in ((hate, 1, "C7S1"), (harass, 1, "C3S2"), (neither, 0, None)):
        pick = rng.sample(texts, min(per_class, len(texts)))
        out += [TextItem(t, label, cat, "davidson", f"dav:{label}:{k % 40}", "statement") for k, t in enumerate(pick)]
    return out


def load_t0(root: Path) -> list[TextItem]:
    out = []
    for line in (root / "t0-prompts" / "prompts.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            fam = t0_family(d["source"])
            out.append(TextItem(d["text"].strip(), 0, None, fam, f"t0:{d['source']}", "document"))
    return out


def load_self_instruct(root: Path) -> list[TextItem]:
    out = []
    path = root / "self-instruct-user-oriented" / "user_oriented_instructions.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        g = f"si:{d.get('motivation_app', '')}"
        inst = d["instruction"].strip()
        for k, inst_row in enumerate(d.get("instances") or [{}]):
            inp = (inst_row.get("input") or "").strip()
            out.append(TextItem(f"{inst}\n\n{inp}" if inp else inst, 0, None, "self-instruct", g, "request"))
            ans = (inst_row.get("output") or "").strip()
            if ans and k == 0:
                out.append(TextItem(ans, 0, None, "self-instruct", g, "answer"))
    return out


def from_examples(examples: Iterable[LiteExample]) -> list[TextItem]:
    """Requests and answers of ``data.build_examples`` as separate items, each judged on its own."""
    out = []
    for e in examples:
        src = collection_of(e.source)
        if e.agent is None:
            if e.request is not None:
                out.append(TextItem(e.user, e.request, e.category if e.request else None, src, e.group, "request"))
        elif e.response is not None:
            out.append(TextItem(e.agent, e.response, e.category if e.response else None, src, e.group, "answer"))
    return out


# ---------------------------------------------------------------------------- assembly
def excluded_texts() -> set[str]:
    """Normalized texts of the hand-written sets that must never be trained on."""
    from .robustness import all_probe_texts
    from .sanity import load_sanity

    out = {normalize_text(t) for t in all_probe_texts()}
    for r in load_sanity():
        out.add(normalize_text(r["user"]))
        if r.get("agent"):
            out.add(normalize_text(r["agent"]))
    return out


def build_corpus(data_root: str | Path, *, seed: int = 0) -> list[TextItem]:
    """Every labelled item, deduplicated (conflicting labels drop both), benchmark-free."""
    root = Path(data_root)
    rng = random.Random(seed)
    rules = Rules()
    items = from_examples(build_examples(root, seed=seed))
    items += load_toxigen(root)
    items += load_ailuminate(root, rules)
    items += load_davidson(root, rng)
    items += load_t0(root)
    items += load_self_instruct(root)
    items += [TextItem(g.text, g.label, g.category, g.family, g.group,
                       "action" if g.family == "gen-agent-actions" else "request") for g in gaps.all_gaps(rng)]
    banned = excluded_texts()
    by_key: dict[str, TextItem] = {}
    conflicts: set[str] = set()
    for it in items:
        if not it.text.strip():
            continue
        key = normalize_text(it.text)
        if not key or key in banned:
            continue
        prev = by_key.get(key)
        if prev is None:
            by_key[key] = it
        elif prev.label != it.label:
            conflicts.add(key)
    out = [it for k, it in by_key.items() if k not in conflicts]
    unknown = sorted({it.source for it in out} - set(SOURCE_ROLES))
    if unknown:
        raise ValueError(f"sources without a role in SOURCE_ROLES: {unknown}")
    return out


def role(item: TextItem) -> str:
    return SOURCE_ROLES[item.source]


def summary(items: list[TextItem]) -> dict[str, Any]:
    by = Counter((it.source, it.label) for it in items)
    sources = sorted({it.source for it in items})
    return {
        "items": len(items),
        "unsafe": sum(it.label for it in items),
        "by_source": {s: {"role": SOURCE_ROLES[s], "safe": by.get((s, 0), 0), "unsafe": by.get((s, 1), 0)}
                      for s in sources},
        "categories": dict(sorted(Counter(it.category for it in items if it.label and it.category).items())),
    }


__all__ = ["AILUMINATE_HAZARDS", "FOLDS", "SOURCE_ROLES", "TextItem", "build_corpus", "collection_of",
           "load_ailuminate", "role", "summary"]
