"""Leak-free splits: exact and near duplicates never straddle train and test.

Public prompt collections repeat themselves: the same jailbreak with a changed name, a
request with different punctuation, one image re-encoded. A split by row would put
near-copies on both sides and inflate the test score, so splitting works on *groups*:

* exact duplicates: same normalized text (case, accents, punctuation and spacing folded)
  and same images;
* near-duplicate texts: character n-gram Jaccard similarity >= ``threshold``, or one text's
  n-grams contained in the other's at >= ``containment`` (a prompt and the same prompt
  behind a preamble), found with MinHash + LSH banding and then verified exactly (texts
  shorter than ``min_chars`` only match exactly or as template variants, so "What is in
  this image?" does not chain unrelated image samples);
* near-duplicate images: 64-bit difference hashes within ``image_distance`` bits, found
  by byte-band candidates and verified;

linked with union-find; whole groups are assigned to splits. :func:`check_leakage`
runs the same detector across given splits and reports every crossing pair.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import unicodedata
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .schema import GuardSample, image_bytes

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_MERSENNE = (1 << 61) - 1


def normalize_text(text: str) -> str:
    """Fold case, accents, punctuation and spacing: the form duplicates are compared in."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    return " ".join(_NON_WORD.sub(" ", t).split())


def sample_text(s: GuardSample) -> str:
    return normalize_text(s.request + " \n " + (s.response or ""))


def _shingles(text: str, n: int) -> np.ndarray:
    if len(text) <= n:
        grams = {text}
    else:
        grams = {text[i:i + n] for i in range(len(text) - n + 1)}
    return np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64, count=len(grams))


class MinHasher:
    """MinHash signatures over character n-gram shingles (universal hashing mod 2^61-1)."""

    def __init__(self, num_perm: int = 64, ngram: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        # Multipliers below 2^31 keep a*x (x < 2^32) inside uint64 without overflow.
        self.a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)
        self.ngram = ngram
        self.num_perm = num_perm

    def signature(self, text: str) -> np.ndarray:
        x = _shingles(text, self.ngram)
        h = (np.outer(self.a, x) + self.b[:, None]) % np.uint64(_MERSENNE)
        return h.min(axis=1)


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(_shingles(a, n).tolist()), set(_shingles(b, n).tolist())
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def dhash(data: bytes, size: int = 8) -> int | None:
    """64-bit difference hash of an image (None when it cannot be decoded)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            g = img.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR)
            px = np.asarray(g, dtype=np.int16)
    except Exception:  # a broken image is left to exact matching; ingestion validates images
        return None
    bits = (px[:, 1:] > px[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class DuplicatePair:
    a: int
    b: int
    kind: str  # "exact" | "near-text" | "template" | "near-image"
    similarity: float


@dataclass
class DuplicateFinder:
    """Finds exact and near duplicates among samples (see the module docstring)."""

    threshold: float = 0.6
    containment: float = 0.9
    ngram: int = 5
    num_perm: int = 128
    bands: int = 32
    min_chars: int = 32
    image_distance: int = 4
    template_max_span: int = 3  # 0 turns template grouping off
    template_min_shared: float = 0.7
    template_min_words: int = 5
    template_max_words: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0 or not 0.0 < self.containment <= 1.0:
            raise ValueError(f"threshold and containment must be in (0, 1], got {self.threshold}, {self.containment}")
        if self.bands < 1 or self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        if not 0.0 < self.template_min_shared <= 1.0:
            raise ValueError(f"template_min_shared must be in (0, 1], got {self.template_min_shared}")
        if self.template_max_span < 0 or self.template_min_words < 1:
            raise ValueError("template_max_span must be >= 0 and template_min_words >= 1")

    def pairs(self, samples: Sequence[GuardSample]) -> list[DuplicatePair]:
        texts = [sample_text(s) for s in samples]
        image_sets = [_image_digests(s) for s in samples]
        found: dict[tuple[int, int], DuplicatePair] = {}

        def add(a: int, b: int, kind: str, sim: float) -> None:
            key = (min(a, b), max(a, b))
            if a != b and key not in found:
                found[key] = DuplicatePair(key[0], key[1], kind, sim)

        # exact: same normalized text and same images
        exact: dict[str, list[int]] = defaultdict(list)
        for i, (t, imgs) in enumerate(zip(texts, image_sets, strict=True)):
            exact[hashlib.sha1((t + "\x1f" + "|".join(sorted(d for d, _ in imgs))).encode()).hexdigest()].append(i)
        for idx in exact.values():
            for j in idx[1:]:
                add(idx[0], j, "exact", 1.0)

        # near text: MinHash LSH on texts long enough to be distinctive
        long_idx = [i for i, t in enumerate(texts) if len(t) >= self.min_chars]
        if len(long_idx) > 1:
            hasher = MinHasher(self.num_perm, self.ngram, self.seed)
            shingle_sets: dict[int, set[int]] = {}

            def overlap(i: int, j: int) -> tuple[float, float]:
                """Jaccard and containment (share of the smaller set inside the larger)."""
                for k in (i, j):
                    if k not in shingle_sets:
                        shingle_sets[k] = set(_shingles(texts[k], self.ngram).tolist())
                a, b = shingle_sets[i], shingle_sets[j]
                inter = len(a & b)
                return inter / max(len(a | b), 1), inter / max(min(len(a), len(b)), 1)
            sigs = np.stack([hasher.signature(texts[i]) for i in long_idx])
            rows = self.num_perm // self.bands
            candidates: set[tuple[int, int]] = set()
            for b in range(self.bands):
                buckets: dict[bytes, list[int]] = defaultdict(list)
                band = sigs[:, b * rows:(b + 1) * rows]
                for k, row in enumerate(band):
                    buckets[row.tobytes()].append(k)
                for members in buckets.values():
                    if 1 < len(members) <= 5000:
                        for x in range(len(members)):
                            for y in range(x + 1, len(members)):
                                candidates.add((members[x], members[y]))
            for x, y in candidates:
                i, j = long_idx[x], long_idx[y]
                if (min(i, j), max(i, j)) in found:
                    continue
                sim, contained = overlap(i, j)
                if sim >= self.threshold or contained >= self.containment:
                    add(i, j, "near-text", sim)

        # template variants: same words but one short span (a name, a place, an object)
        if self.template_max_span > 0:
            for i, j, sim in self._template_pairs(texts, image_sets):
                if (min(i, j), max(i, j)) not in found:
                    add(i, j, "template", sim)

        # near image: any shared near-identical image links two samples
        flat = [(i, d, h) for i, imgs in enumerate(image_sets) for d, h in imgs]
        by_digest: dict[str, list[int]] = defaultdict(list)
        for i, d, _ in flat:
            by_digest[d].append(i)
        for idx in by_digest.values():
            for j in idx[1:]:
                add(idx[0], j, "near-image", 1.0)
        hashed = [(i, h) for i, _, h in flat if h is not None]
        bucket: dict[tuple[int, int], list[int]] = defaultdict(list)
        for k, (_, h) in enumerate(hashed):
            for byte in range(8):  # pigeonhole: <= 7 differing bits leave one byte equal
                bucket[(byte, (h >> (8 * byte)) & 0xFF)].append(k)
        seen: set[tuple[int, int]] = set()
        for members in bucket.values():
            if len(members) > 5000:
                continue
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    kx, ky = members[x], members[y]
                    if (kx, ky) in seen:
                        continue
                    seen.add((kx, ky))
                    (i, hi), (j, hj) = hashed[kx], hashed[ky]
                    dist = bin(hi ^ hj).count("1")
                    if i != j and dist <= self.image_distance:
                        add(i, j, "near-image", 1.0 - dist / 64)
        return sorted(found.values(), key=lambda p: (p.a, p.b))

    def _template_pairs(self, texts: Sequence[str],
                        image_sets: Sequence[list[tuple[str, int | None]]]) -> list[tuple[int, int, float]]:
        """Pairs of template variants (see the module docstring), each verified word by word."""
        span = self.template_max_span
        words: dict[int, list[str]] = {}
        keys: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for idx, text in enumerate(texts):
            toks = text.split()
            n = len(toks)
            if n - span < self.template_min_words or n > self.template_max_words:
                continue
            words[idx] = toks
            k = _cut_keys(toks, span, self.template_min_words)
            keys.append(k)
            owners.append(np.full(len(k), idx, dtype=np.int64))
        if not keys:
            return []
        all_keys = np.concatenate(keys)
        all_owners = np.concatenate(owners)
        order = np.argsort(all_keys, kind="stable")
        all_keys, all_owners = all_keys[order], all_owners[order]
        starts = np.flatnonzero(np.r_[True, all_keys[1:] != all_keys[:-1]])
        ends = np.r_[starts[1:], len(all_keys)]
        out: dict[tuple[int, int], float] = {}
        for a, b in zip(starts, ends, strict=True):
            if b - a < 2:
                continue
            members = sorted(set(all_owners[a:b].tolist()))
            first = members[0]
            for other in members[1:]:
                if (first, other) in out:
                    continue
                if sorted(d for d, _ in image_sets[first]) != sorted(d for d, _ in image_sets[other]):
                    continue  # same words, different images: the images decide (near-image check)
                sim = _template_similarity(words[first], words[other], span)
                if sim is not None and sim >= self.template_min_shared:
                    out[(first, other)] = sim
        return [(i, j, sim) for (i, j), sim in sorted(out.items())]

    def groups(self, samples: Sequence[GuardSample]) -> list[list[int]]:
        uf = _UnionFind(len(samples))
        for p in self.pairs(samples):
            uf.union(p.a, p.b)
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(samples)):
            out[uf.find(i)].append(i)
        return sorted(out.values())


_MASK = (1 << 64) - 1
_B1, _B2 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F


def _cut_keys(tokens: list[str], span: int, min_words: int) -> np.ndarray:
    """One 64-bit key per (prefix, suffix) cut that leaves out 0..``span`` words in between.

    Two texts share a key when they have the same prefix and the same suffix around a middle
    of at most ``span`` words each (an empty middle on one side: an insertion).
    """
    n = len(tokens)
    h = [zlib.crc32(t.encode("utf-8")) + 1 for t in tokens]
    prefix = [0] * (n + 1)
    for i, x in enumerate(h):
        prefix[i + 1] = (prefix[i] * _B1 + x) & _MASK
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = (suffix[i + 1] * _B2 + h[i]) & _MASK
    out = []
    for length in range(span + 1):
        for i in range(n - length + 1):
            j = i + length
            if i + (n - j) < min_words:
                continue
            key = (prefix[i] * 0xFF51AFD7ED558CCD ^ suffix[j] * 0xC4CEB9FE1A85EC53 ^ (i << 48) ^ ((n - j) << 32)) & _MASK
            out.append(key)
    return np.asarray(out, dtype=np.uint64)


def _template_similarity(a: list[str], b: list[str], span: int) -> float | None:
    """Shared share of the longer text when ``a`` and ``b`` differ in one span of <= ``span`` words."""
    if a == b:
        return 1.0
    limit = min(len(a), len(b))
    p = 0
    while p < limit and a[p] == b[p]:
        p += 1
    s = 0
    while s < limit - p and a[-1 - s] == b[-1 - s]:
        s += 1
    if len(a) - p - s > span or len(b) - p - s > span:
        return None
    return (p + s) / max(len(a), len(b))


def _image_digests(s: GuardSample) -> list[tuple[str, int | None]]:
    out = []
    for img in s.images:
        data = image_bytes(img)
        out.append((hashlib.sha256(data).hexdigest(), dhash(data)))
    return out


def split_samples(samples: Sequence[GuardSample], fractions: Mapping[str, float] | None = None, *,
                  seed: int = 0, finder: DuplicateFinder | None = None) -> dict[str, list[GuardSample]]:
    """Split into named parts by duplicate groups (default 80/10/10 train/validation/test).

    Groups are shuffled and each goes whole to the part furthest below its target size,
    so the fractions hold up to the size of the largest group.
    """
    fr = dict(fractions or {"train": 0.8, "validation": 0.1, "test": 0.1})
    total = sum(fr.values())
    if total <= 0 or any(v < 0 for v in fr.values()):
        raise ValueError(f"split fractions must be non-negative and sum to > 0, got {fr}")
    fr = {k: v / total for k, v in fr.items()}
    groups = (finder or DuplicateFinder(seed=seed)).groups(samples)
    rng = random.Random(seed)
    rng.shuffle(groups)
    groups.sort(key=len, reverse=True)  # place big groups first, while every part has room
    n = len(samples)
    parts: dict[str, list[int]] = {k: [] for k in fr}
    for g in groups:
        name = max(fr, key=lambda k: (fr[k] * n - len(parts[k])) / max(fr[k], 1e-9) if fr[k] > 0 else -1e18)
        parts[name].extend(g)
    return {k: [samples[i] for i in sorted(v)] for k, v in parts.items()}


@dataclass
class LeakageReport:
    """Pairs of samples from different splits that are exact or near duplicates."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.pairs

    @property
    def exact(self) -> int:
        return sum(1 for p in self.pairs if p["kind"] == "exact")

    @property
    def near(self) -> int:
        return len(self.pairs) - self.exact

    def summary(self) -> str:
        if self.ok:
            return f"no leakage across {', '.join(f'{k} ({v})' for k, v in self.sizes.items())}"
        return f"{len(self.pairs)} cross-split duplicate pairs ({self.exact} exact, {self.near} near)"


def check_leakage(splits: Mapping[str, Sequence[GuardSample]], *,
                  finder: DuplicateFinder | None = None) -> LeakageReport:
    """Report every duplicate pair whose two samples sit in different splits."""
    flat: list[GuardSample] = []
    owner: list[str] = []
    for name, items in splits.items():
        flat.extend(items)
        owner.extend([name] * len(items))
    report = LeakageReport(sizes={k: len(v) for k, v in splits.items()})
    for p in (finder or DuplicateFinder()).pairs(flat):
        if owner[p.a] != owner[p.b]:
            report.pairs.append({
                "kind": p.kind, "similarity": round(p.similarity, 4),
                "a": {"split": owner[p.a], "id": flat[p.a].id}, "b": {"split": owner[p.b], "id": flat[p.b].id},
            })
    return report


def duplicate_report(samples: Sequence[GuardSample], finder: DuplicateFinder | None = None, *,
                     examples: int = 5, seed: int = 0) -> dict[str, Any]:
    """What a finder groups in ``samples``: pairs by kind, groups, the largest, example pairs per kind."""
    f = finder or DuplicateFinder()
    pairs = f.pairs(samples)
    groups = [g for g in f.groups(samples) if len(g) > 1]
    by_kind: dict[str, list[DuplicatePair]] = defaultdict(list)
    for p in pairs:
        by_kind[p.kind].append(p)
    rng = random.Random(seed)

    def text(i: int) -> str:
        return (samples[i].request or "")[:160]

    return {
        "samples": len(samples),
        "pairs": {k: len(v) for k, v in sorted(by_kind.items())},
        "groups": len(groups),
        "samples_in_groups": sum(len(g) for g in groups),
        "largest_group": max((len(g) for g in groups), default=1),
        "examples": {k: [{"similarity": round(p.similarity, 3), "a": text(p.a), "b": text(p.b)}
                         for p in rng.sample(v, min(examples, len(v)))] for k, v in sorted(by_kind.items())},
    }


def _read_texts(path: str, column: str | None) -> list[str]:
    import csv
    import json

    p = Path(path)
    names = [column] if column else ["prompt", "text", "request", "instruction", "prompt_text", "question"]
    if p.suffix.lower() == ".txt":
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if p.suffix.lower() in (".csv", ".tsv"):
        with p.open(encoding="utf-8-sig", newline="") as fh:
            rows: list[dict[str, Any]] = list(csv.DictReader(fh, delimiter="\t" if p.suffix.lower() == ".tsv" else ","))
    else:
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for r in rows:
        value = next((r[n] for n in names if isinstance(r.get(n), str) and r[n].strip()), None)
        if value is not None:
            out.append(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.data.splits FILE...``: what the leak check groups in your texts."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="python -m training.data.splits",
                                 description="Report exact, near-duplicate and template-variant groups in text files "
                                 "(.jsonl/.json lines, .csv/.tsv, .txt), to choose the leak-check thresholds.")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--column", help="text field (default: prompt, text, request, instruction, prompt_text, question)")
    ap.add_argument("--near-threshold", type=float, default=DuplicateFinder.threshold)
    ap.add_argument("--containment", type=float, default=DuplicateFinder.containment)
    ap.add_argument("--template-span", type=int, default=DuplicateFinder.template_max_span)
    ap.add_argument("--template-min-shared", type=float, default=DuplicateFinder.template_min_shared)
    ap.add_argument("--examples", type=int, default=5)
    a = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    texts = [t for f in a.files for t in _read_texts(f, a.column)]
    samples = [GuardSample(request=t, request_label="safe") for t in texts]
    finder = DuplicateFinder(threshold=a.near_threshold, containment=a.containment,
                             template_max_span=a.template_span, template_min_shared=a.template_min_shared)
    print(json.dumps(duplicate_report(samples, finder, examples=a.examples), indent=2, ensure_ascii=False))
    return 0


__all__ = [
    "DuplicateFinder",
    "DuplicatePair",
    "LeakageReport",
    "MinHasher",
    "check_leakage",
    "dhash",
    "duplicate_report",
    "jaccard",
    "normalize_text",
    "split_samples",
]


if __name__ == "__main__":
    raise SystemExit(main())
