"""Exports for the two RL stacks: a TRL dataset and a verl parquet file.

Prompts are rendered with the core's :func:`proguard_rails.protocol.render`, the code the
judges use at inference, with each sample's own policy (held-out entries removed), so
what the guard is trained on is byte-identical to what it will be shown.

TRL (``GRPOTrainer``): a ``datasets.Dataset`` with

* ``prompt``: conversational messages ``[{"role": "system", ...}, {"role": "user", ...}]``
  with string contents; TRL inserts one image placeholder per image before the user text,
  the order the released inference uses;
* ``images``: a list of images per row (``datasets.Image``), **an empty list for text rows,
  never None** (TRL would otherwise treat the column as absent for the whole batch);
* ``ground_truth``: the reward target as JSON (the same string verl gets), plus readable
  columns (``modality``, labels, ``category``, ``target_name``, ``held_out``, ``source``).

verl (``RLHFDataset``): parquet rows with ``data_source``, ``prompt`` (the user content
carries one ``<image>`` placeholder per image, first, since verl splits strings on it),
``images`` (``[{"bytes": ...}]``; null for text rows, as verl passes a present list to the
processor), ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth": JSON}``)
and ``extra_info`` (index, split, modality, labels, category, original name, synonyms,
held-out ids, source). Literal ``<image>``/``<video>``/``<audio>`` in sample text (every
placeholder verl's loader interprets) are made inert (``‹image›``) so they cannot create
phantom placeholders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from proguard_rails.errors import MissingDependencyError
from proguard_rails.inputs import build_request
from proguard_rails.protocol import ModalityTemplate, PromptTemplates, RenderedPrompt, render
from proguard_rails.settings import ProGuardSettings
from proguard_rails.taxonomy import Taxonomy

from .schema import GuardSample, dumps_target, image_bytes

#: The placeholders verl 0.9's ``RLHFDataset._build_messages`` splits message strings on
#: (``re.split("(<image>|<video>|<audio>)")``): each one consumes an entry of the row's
#: images/videos/audios, so a literal one in sample text would misalign or crash the loader.
VERL_PLACEHOLDERS: tuple[str, ...] = ("image", "video", "audio")
_VERL_PLACEHOLDER_RE = re.compile(r"<(" + "|".join(VERL_PLACEHOLDERS) + r")>", re.IGNORECASE)


def compact_templates() -> PromptTemplates:
    """Short prompt templates for CPU smoke runs on the tiny test model.

    The released templates are ~1,300 tokens of instructions (~3,700 with the tiny model's
    byte-level vocabulary), which makes CPU smoke steps slow. These keep the same answer
    format and slots. Never train a real guard on them: the released checkpoints expect
    the released templates (the default everywhere).
    """
    fmt = "\nThink inside <think></think>, then answer exactly:\n<answer>\nRequest:safe or unsafe\n"
    return PromptTemplates(
        text=ModalityTemplate("Judge the conversation. Policy:", fmt + "Response:safe or unsafe\n"
                              "Category:None, an id C*S*, or a name\n</answer>",
                              "User: {{HUMAN_USER}}\nAgent: {{AI_ASSISTANT}}"),
        image=ModalityTemplate("Judge the image. Policy:", fmt + "Category:None, an id C*S*, or a name\n</answer>",
                               "Judge this image.{{HUMAN_USER}}{{AI_ASSISTANT}}"),
        text_image=ModalityTemplate("Judge the image and conversation. Policy:", fmt + "Response:safe or unsafe\n"
                                    "Category:None, an id C*, or a name\n</answer>",
                                    "User: {{HUMAN_USER}}\nAgent: {{AI_ASSISTANT}}"),
    )


def resolve_templates(templates: PromptTemplates | str | None) -> PromptTemplates | None:
    """``None``/``"released"``: the released prompts; ``"compact"``: :func:`compact_templates`."""
    if templates is None or isinstance(templates, PromptTemplates):
        return templates
    if templates == "released":
        return None
    if templates == "compact":
        return compact_templates()
    raise ValueError(f"unknown prompt templates {templates!r}; use released or compact")


def _policy_cache(taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    @lru_cache(maxsize=256)
    def shown(held: tuple[str, ...]) -> Taxonomy:
        return taxonomy.hold_out(held) if held else taxonomy

    return shown


def render_sample(sample: GuardSample, taxonomy: Taxonomy | None = None, *,
                  settings: ProGuardSettings | None = None,
                  templates: PromptTemplates | str | None = None) -> RenderedPrompt:
    """The prompt for one sample, through the same request building and rendering as inference."""
    tax = taxonomy or Taxonomy.default()
    request = build_request(sample.request, sample.response if sample.response is not None else None,
                            [image_bytes(i) for i in sample.images], settings=settings)
    if request.modality != sample.modality:  # pragma: no cover - schema and core derive it the same way
        raise ValueError(f"sample {sample.id}: modality {sample.modality} vs request {request.modality}")
    return render(request, sample.policy(tax), templates=resolve_templates(templates))


def _rows(samples: Iterable[GuardSample], taxonomy: Taxonomy, settings: ProGuardSettings | None,
          templates: PromptTemplates | str | None):
    shown = _policy_cache(taxonomy)
    tpl = resolve_templates(templates)
    for s in samples:
        request = build_request(s.request, s.response, [image_bytes(i) for i in s.images], settings=settings)
        yield s, render(request, shown(tuple(s.held_out)), templates=tpl)


def _readable(s: GuardSample, taxonomy: Taxonomy) -> dict[str, Any]:
    target = s.reward_target(taxonomy)
    return {
        "sample_id": s.id,
        "source": s.source,
        "modality": target["modality"],
        "request_label": s.request_label,
        "response_label": s.response_label,
        "category": s.category,
        "target_name": s.target_name,
        "held_out": list(s.held_out),
    }


def to_trl_records(samples: Iterable[GuardSample], taxonomy: Taxonomy | None = None, *,
                   settings: ProGuardSettings | None = None,
                   templates: PromptTemplates | str | None = None) -> list[dict[str, Any]]:
    """Plain dict rows (images as encoded bytes); :func:`to_trl_dataset` wraps them."""
    tax = taxonomy or Taxonomy.default()
    out = []
    for s, rp in _rows(samples, tax, settings, templates):
        out.append({
            "prompt": [{"role": "system", "content": rp.system}, {"role": "user", "content": rp.user_text}],
            "images": [{"bytes": img.data, "path": None} for img in rp.images],
            "ground_truth": dumps_target({**s.reward_target(tax), "taxonomy": tax.fingerprint}),
            **_readable(s, tax),
        })
    return out


def trl_features():  # type: ignore[no-untyped-def]
    from datasets import Features, Image, List, Value

    return Features({
        "prompt": List({"role": Value("string"), "content": Value("string")}),
        "images": List(Image()),
        "ground_truth": Value("string"),
        "sample_id": Value("string"),
        "source": Value("string"),
        "modality": Value("string"),
        "request_label": Value("string"),
        "response_label": Value("string"),
        "category": Value("string"),
        "target_name": Value("string"),
        "held_out": List(Value("string")),
    })


def to_trl_dataset(samples: Iterable[GuardSample], taxonomy: Taxonomy | None = None, *,
                   settings: ProGuardSettings | None = None,
                   templates: PromptTemplates | str | None = None):  # type: ignore[no-untyped-def]
    """A ``datasets.Dataset`` ready for ``GRPOTrainer(train_dataset=...)`` (see module docstring)."""
    try:
        from datasets import Dataset
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("datasets", "train", "the TRL export") from exc
    records = to_trl_records(samples, taxonomy, settings=settings, templates=templates)
    feats = trl_features()
    columns = {name: [r[name] for r in records] for name in feats}
    return Dataset.from_dict(columns, features=feats)


def save_trl(samples: Iterable[GuardSample], path: str | Path, taxonomy: Taxonomy | None = None, *,
             settings: ProGuardSettings | None = None, templates: PromptTemplates | str | None = None) -> Path:
    """Write the TRL dataset with ``save_to_disk`` (load with ``datasets.load_from_disk``)."""
    ds = to_trl_dataset(samples, taxonomy, settings=settings, templates=templates)
    p = Path(path)
    ds.save_to_disk(str(p))
    return p


def _inert(text: str) -> tuple[str, int]:
    n = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"‹{m.group(1)}›"

    return _VERL_PLACEHOLDER_RE.sub(sub, text), n


def to_verl_rows(samples: Sequence[GuardSample], taxonomy: Taxonomy | None = None, *, split: str = "train",
                 data_source: str = "proguard", settings: ProGuardSettings | None = None,
                 templates: PromptTemplates | str | None = None) -> list[dict[str, Any]]:
    """verl rows (see module docstring); ``data_source`` is what verl groups validation metrics by."""
    tax = taxonomy or Taxonomy.default()
    rows = []
    for index, (s, rp) in enumerate(_rows(samples, tax, settings, templates)):
        user, n_inert = _inert(rp.user_text)
        system, n_sys = _inert(rp.system)
        target = s.reward_target(tax)
        original = None
        if s.category and tax.find(s.category) is not None:
            original = tax.get(s.target_category(tax) or s.category).name
        rows.append({
            "data_source": data_source,
            "prompt": [
                {"role": "system", "content": system},
                {"role": "user", "content": "<image>" * len(rp.images) + user},
            ],
            "images": [{"bytes": img.data} for img in rp.images] or None,
            "ability": "safety",
            "reward_model": {"style": "rule", "ground_truth": dumps_target({**target, "taxonomy": tax.fingerprint})},
            "extra_info": {
                "index": index,
                "split": split,
                "sample_id": s.id,
                "source": s.source,
                "modality": target["modality"],
                "request_label": s.request_label,
                "response_label": s.response_label,
                "category": s.category,
                "original_category": s.target_name or original,
                "synonyms": list(s.synonyms) if s.is_out_of_policy else (
                    list(tax.get(s.target_category(tax) or "").synonyms) if original else []),
                "held_out": list(s.held_out),
                "out_of_policy": s.is_out_of_policy,
                "inert_placeholders": n_inert + n_sys,
            },
        })
    return rows


def verl_schema():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(msg)),
        ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.struct([
            ("index", pa.int64()), ("split", pa.string()), ("sample_id", pa.string()), ("source", pa.string()),
            ("modality", pa.string()), ("request_label", pa.string()), ("response_label", pa.string()),
            ("category", pa.string()), ("original_category", pa.string()), ("synonyms", pa.list_(pa.string())),
            ("held_out", pa.list_(pa.string())), ("out_of_policy", pa.bool_()),
            ("inert_placeholders", pa.int64()),
        ])),
    ])


def write_verl_parquet(samples: Sequence[GuardSample], path: str | Path, taxonomy: Taxonomy | None = None, *,
                       split: str = "train", data_source: str = "proguard",
                       settings: ProGuardSettings | None = None,
                       templates: PromptTemplates | str | None = None) -> Path:
    """Write verl's parquet (``data.train_files=...``); pyarrow is the only dependency."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("pyarrow", "train", "the verl export") from exc
    rows = to_verl_rows(samples, taxonomy, split=split, data_source=data_source, settings=settings,
                        templates=templates)
    table = pa.Table.from_pylist(rows, schema=verl_schema())
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(p))
    return p


def load_ground_truth(value: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


__all__ = [
    "VERL_PLACEHOLDERS",
    "compact_templates",
    "load_ground_truth",
    "resolve_templates",
    "render_sample",
    "save_trl",
    "to_trl_dataset",
    "to_trl_records",
    "to_verl_rows",
    "trl_features",
    "verl_schema",
    "write_verl_parquet",
]
