"""Leak-free splits: exact and near duplicates never straddle train and test.

Public prompt collections repeat themselves: the same jailbreak with a changed name, a
request with different punctuation, one image re-encoded. A split by row would put
near-copies on both sides and inflate the test score, so splitting works on *groups*:

* exact duplicates: same normalized text (case, accents, punctuation and spacing folded)
  and same images;
* near-duplicate texts: character n-gram Jaccard similarity >= ``threshold``, found with
  MinHash + LSH banding and then verified exactly (texts shorter than ``min_chars`` only
  match exactly, so "What is in this image?" does not chain unrelated image samples);
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
    kind: str  # "exact" | "near-text" | "near-image"
    similarity: float


@dataclass
class DuplicateFinder:
    """Finds exact and near duplicates among samples (see the module docstring)."""

    threshold: float = 0.8
    ngram: int = 5
    num_perm: int = 64
    bands: int = 16
    min_chars: int = 32
    image_distance: int = 4
    seed: int = 0

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
                sim = jaccard(texts[i], texts[j], self.ngram)
                if sim >= self.threshold:
                    add(i, j, "near-text", sim)

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

    def groups(self, samples: Sequence[GuardSample]) -> list[list[int]]:
        uf = _UnionFind(len(samples))
        for p in self.pairs(samples):
            uf.union(p.a, p.b)
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(samples)):
            out[uf.find(i)].append(i)
        return sorted(out.values())


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


__all__ = [
    "DuplicateFinder",
    "DuplicatePair",
    "LeakageReport",
    "MinHasher",
    "check_leakage",
    "dhash",
    "jaccard",
    "normalize_text",
    "split_samples",
]
