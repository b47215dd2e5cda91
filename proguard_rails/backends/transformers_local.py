"""Local generation with ``transformers``: ProGuard weights loaded in-process, on GPU or CPU.

Three things make this fast enough to put in front of every LLM call:

* **One model per checkpoint.** Every backend (hence every guard) naming the same folder, dtype
  and device shares one loaded model through a process-wide, reference-counted registry.
* **Batching.** All GPU work runs on one worker thread per model, fed by a queue. The worker takes
  up to ``batch_size`` compatible prompts at a time, so ``agenerate_batch`` is batched and
  concurrent ``agenerate`` calls (from any thread or event loop) are coalesced into batches.
  Event loops only await futures; they never block on the model.
* **Prompt-prefix reuse.** ProGuard's system prompt (the policy, ~1.5k tokens) is the same for
  every check of a modality. Its key/value cache and token ids are computed once per (model,
  system prompt: template and policy) and copied into each batch, so a check tokenizes and
  prefills only its own conversation. The conversation part
  is left-padded *after* the prefix (``[prefix | pad | conversation]``), padding is masked out and
  M-RoPE positions are computed as if the padding were absent, so greedy outputs match plain
  ``generate`` token for token (tested in float32; in bf16 the two differ only by kernel rounding,
  as batched and unbatched ``generate`` already do).

torch and transformers are imported when a backend is built, never at module import
(``pip install 'proguard-rails[local]'``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import hashlib
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ..errors import BackendError, BackendTimeoutError, ConfigurationError, MissingDependencyError
from ..protocol import RenderedPrompt
from ..settings import ProGuardSettings
from .base import STOP_SEQUENCES, Backend, Generation, stop_end

logger = logging.getLogger("proguard_rails.backends.transformers")

#: Tokens of generated text re-decoded to look for a stop string (covers any stop string of up to
#: this many characters, since every token adds at least one character).
_STOP_WINDOW_TOKENS = 24


# ---------------------------------------------------------------------------------------------
# Batch worker: one thread per loaded model, a queue, compatible items batched together.
# Shared with the in-process vLLM backend.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class WorkItem:
    """One prompt waiting for generation. ``group`` decides which items may share a batch."""

    prompt: RenderedPrompt
    group: Hashable
    batch_size: int
    future: concurrent.futures.Future[Generation]
    enqueued_at: float = dataclasses.field(default_factory=time.monotonic)


BatchFn = Callable[[Sequence[WorkItem]], Sequence["Generation | BaseException"]]


class BatchWorker:
    """Runs ``batch_fn`` on one daemon thread, over batches of queued items of the same group.

    Why one thread: model weights and caches are not safe to use from several threads at once,
    and a single consumer is what lets unrelated callers' prompts be batched together. The batch
    function returns one result per item; an exception it raises fails the whole batch, so the
    worker retries that batch's items one at a time, to keep one bad input from failing its
    neighbours.
    """

    def __init__(self, batch_fn: BatchFn, *, name: str) -> None:
        self._batch_fn = batch_fn
        self._queue: collections.deque[WorkItem] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.batches = 0
        self.items = 0
        self.largest_batch = 0

    def submit(self, prompts: Sequence[RenderedPrompt], group: Hashable, batch_size: int) -> list[
        concurrent.futures.Future[Generation]
    ]:
        """Queue prompts atomically (so one caller's batch stays together) and return their futures."""
        items = [WorkItem(p, group, max(1, batch_size), concurrent.futures.Future()) for p in prompts]
        with self._cond:
            if self._closing:
                raise BackendError("the local model was released (backend closed); create a new backend")
            self._queue.extend(items)
            self._cond.notify()
        return [it.future for it in items]

    def _take_batch(self) -> list[WorkItem] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._closing and not self._queue:
                return None
            batch: list[WorkItem] = []
            first: WorkItem | None = None
            while self._queue and first is None:
                cand = self._queue.popleft()
                if cand.future.set_running_or_notify_cancel():  # False: the caller gave up
                    first = cand
            if first is None:
                return []
            batch.append(first)
            if first.batch_size > 1 and self._queue:
                keep: collections.deque[WorkItem] = collections.deque()
                while self._queue:
                    cand = self._queue.popleft()
                    if len(batch) < first.batch_size and cand.group == first.group:
                        if cand.future.set_running_or_notify_cancel():
                            batch.append(cand)
                    else:
                        keep.append(cand)
                self._queue = keep
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if not batch:
                continue
            self.batches += 1
            self.items += len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
            self._run_batch(batch)
            del batch  # drop references to prompts (images) before waiting again

    def _run_batch(self, batch: Sequence[WorkItem]) -> None:
        try:
            results = list(self._batch_fn(batch))
            if len(results) != len(batch):
                raise BackendError(f"local batch returned {len(results)} results for {len(batch)} prompts")
        except BaseException as exc:  # reported to the callers; the worker lives on
            if len(batch) > 1:
                logger.warning("local batch of %d failed (%r); retrying its prompts one by one", len(batch), exc)
                for item in batch:
                    self._run_batch([item])
                return
            results = [_as_backend_error(exc)]
        for item, res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                item.future.set_exception(_as_backend_error(res))
            else:
                item.future.set_result(res)

    def close(self) -> None:
        """Stop after the running batch; queued items fail with ``BackendError``."""
        with self._cond:
            self._closing = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in pending:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(BackendError("the local model was released before this prompt ran"))

    @property
    def queued(self) -> int:
        return len(self._queue)


def _as_backend_error(exc: BaseException) -> BaseException:
    from ..errors import ProGuardError

    if isinstance(exc, ProGuardError):
        return exc
    msg = f"local generation failed: {type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower():
        msg += " (lower batch_size, max_pixels or max_new_tokens)"
    err = BackendError(msg)
    err.__cause__ = exc
    return err


async def await_futures(
    futures: Sequence[concurrent.futures.Future[Generation]], timeout: float | None
) -> list[Generation | BaseException]:
    """Await worker futures without blocking the loop; a timeout fails (and cancels) the rest."""
    wrapped = [asyncio.wrap_future(f) for f in futures]
    done, pending = await asyncio.wait(wrapped, timeout=timeout)
    for fut in pending:
        fut.cancel()  # also cancels the queued item if the worker has not started it
    out: list[Generation | BaseException] = []
    for fut in wrapped:
        if fut in pending:
            out.append(BackendTimeoutError(f"local generation took longer than {timeout:.1f}s (timeout=)"))
        elif fut.cancelled():
            out.append(BackendError("local generation was cancelled"))
        else:
            exc = fut.exception()
            out.append(exc if exc is not None else fut.result())
    return out


def wait_futures(
    futures: Sequence[concurrent.futures.Future[Generation]], timeout: float | None
) -> list[Generation | BaseException]:
    """Blocking twin of :func:`await_futures` for sync callers (scripts, benchmarks)."""
    done, pending = concurrent.futures.wait(futures, timeout=timeout)
    out: list[Generation | BaseException] = []
    for fut in futures:
        if fut in pending:
            fut.cancel()
            out.append(BackendTimeoutError(f"local generation took longer than {timeout:.1f}s (timeout=)"))
        elif fut.cancelled():
            out.append(BackendError("local generation was cancelled"))
        else:
            exc = fut.exception()
            out.append(exc if exc is not None else fut.result())
    return out


# ---------------------------------------------------------------------------------------------
# Process-wide registry of shared resources (loaded models, vLLM engines), reference counted.
# ---------------------------------------------------------------------------------------------


class SharedRegistry:
    """Key -> resource, created once, shared by reference count, closed when the last user goes.

    Creation happens under a per-key lock, so two guards built at the same time on the same path
    load the checkpoint once; different keys load in parallel.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Hashable, _Slot] = {}

    def acquire(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            slot.users += 1  # reserved before loading, so a concurrent release cannot drop the slot
        try:
            with slot.lock:
                if slot.resource is None:
                    slot.resource = factory()
                return slot.resource
        except BaseException:
            self.release(key)
            raise

    def release(self, key: Hashable) -> None:
        resource = None
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return
            slot.users -= 1
            if slot.users <= 0:
                del self._slots[key]
                resource = slot.resource
        if resource is not None and hasattr(resource, "close"):
            resource.close()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            slot = self._slots.get(key)
            return slot.resource if slot else None

    def users(self, key: Hashable) -> int:
        with self._lock:
            slot = self._slots.get(key)
            return slot.users if slot else 0

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._slots)


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.resource: Any = None


_MODELS = SharedRegistry()


def loaded_models() -> list[Hashable]:
    """Keys ``(path, dtype, device, attn)`` of the models this process holds (for diagnostics)."""
    return _MODELS.keys()


# ---------------------------------------------------------------------------------------------
# The shared model: weights, processor, prefix caches and the generation code (worker thread only).
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GenParams:
    """Per-backend generation settings. Part of the batch group: only equal params share a batch."""

    max_new_tokens: int
    prefix_cache: bool
    min_pixels: int | None
    max_pixels: int | None
    stop: tuple[str, ...]


@dataclasses.dataclass
class _Prefix:
    ids: list[int]
    kv: list[tuple[Any, Any]]  # per layer (keys, values), batch 1, never mutated
    #: the system turn as the chat template renders it (every full prompt text starts with it)
    text: str = ""
    #: the special token every conversation part starts with, when a conversation part tokenizes
    #: alone exactly as it does inside the whole prompt (checked when the prefix is built); None:
    #: tokenize whole prompts and compare their first tokens with ``ids``
    boundary: str | None = None


@dataclasses.dataclass
class _Prefilled:
    logits: Any  # (batch, vocab) at the last prompt position
    cache: Any
    mask: Any
    next_pos: Any  # (batch,) position of the first generated token
    n_prefix: int
    prompt_lens: list[int]


def _import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "local", "the local transformers backend") from exc
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependencyError("transformers", "local", "the local transformers backend") from exc
    return torch, transformers


def _resolve_device_dtype(torch: Any, device: str | None, dtype: str | None) -> tuple[str, str]:
    """(device_map, dtype name): cuda if available else cpu; bf16 on GPU, float32 on CPU."""
    dev = (device or "").strip().lower() or None
    if dev is None:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(
            f"device {dev!r} was asked for but torch sees no CUDA GPU; set device='cpu' (PROGUARD_DEVICE=cpu)"
        )
    on_gpu = dev.startswith("cuda") or (dev == "auto" and torch.cuda.is_available())
    name = (dtype or "").strip().lower().replace("torch.", "") or None
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    name = aliases.get(name, name) if name else None
    if name is None:
        if on_gpu:
            name = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            name = "float32"  # bf16 matmuls on CPU are slow and change greedy outputs
    if name != "auto" and not isinstance(getattr(torch, name, None), torch.dtype):
        raise ConfigurationError(f"unknown dtype {dtype!r}; use bfloat16, float16, float32 or auto (PROGUARD_DTYPE)")
    return dev, name


def _check_checkpoint_folder(model_path: str | os.PathLike[str]) -> str:
    path = os.path.realpath(os.path.expanduser(os.fspath(model_path)))
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigurationError(
            f"model_path {os.fspath(model_path)!r} is not a local checkpoint folder (no config.json). "
            "Download the weights first, e.g. `hf download <org>/ProGuard-7B --local-dir /models/ProGuard-7B`, "
            "and set model_path= or PROGUARD_MODEL_PATH to that folder."
        )
    return path


class SharedModel:
    """One loaded checkpoint: model, processor, prefix caches, and the worker that runs them."""

    def __init__(self, path: str, device: str, dtype: str, attn_implementation: str | None,
                 prefix_cache_size: int = 8) -> None:
        torch, transformers = _import_torch_transformers()
        self.torch = torch
        self.path = path
        self.device_map = device
        self.dtype_name = dtype
        kwargs: dict[str, Any] = {"local_files_only": True, "device_map": device}
        kwargs["dtype"] = "auto" if dtype == "auto" else getattr(torch, dtype)
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
            self.model = transformers.AutoModelForImageTextToText.from_pretrained(path, **kwargs).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"could not load a vision-language checkpoint from {path!r}: {exc}. It must be a Qwen2.5-VL or "
                "Qwen3-VL style folder (config.json, weights, processor and tokenizer files)."
            ) from exc
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"  # decoder-only batching; this processor is ours alone
        self.device = self.model.device
        self.pad_id, self.eos_ids = self._special_ids()
        # transformers >= 5.2x names the argument ``cache`` (``past_key_values`` is deprecated).
        fwd = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in fwd else "past_key_values"
        inner = getattr(self.model, "model", None)
        self._rope_index = getattr(inner, "get_rope_index", None)
        self._prefixes: collections.OrderedDict[str, _Prefix | None] = collections.OrderedDict()
        self._prefix_cache_size = max(1, prefix_cache_size)
        self.stats = {"prefix_builds": 0, "prefix_hits": 0, "prefix_fallbacks": 0, "reuse_batches": 0,
                      "generate_batches": 0, "conversation_only_encodes": 0, "prompt_tokens": 0,
                      "cached_tokens": 0, "completion_tokens": 0}
        self.worker = BatchWorker(self._run_items, name=f"proguard-transformers:{os.path.basename(path)}")

    # --- setup -------------------------------------------------------------------------------
    def _special_ids(self) -> tuple[int, set[int]]:
        gc = getattr(self.model, "generation_config", None)
        eos: set[int] = set()
        for src in (getattr(gc, "eos_token_id", None), getattr(self.tokenizer, "eos_token_id", None)):
            if isinstance(src, int):
                eos.add(src)
            elif src:
                eos.update(int(x) for x in src)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(gc, "pad_token_id", None)
        if pad is None:
            pad = min(eos) if eos else 0
        return int(pad), eos

    def close(self) -> None:
        self.worker.close()
        self._prefixes.clear()

    # --- prompt building ---------------------------------------------------------------------
    @staticmethod
    def chat_messages(prompt: RenderedPrompt) -> list[dict[str, Any]]:
        """Same layout as ``RenderedPrompt.to_messages()``: images first, then the text, in one user turn."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in prompt.images]
        content.append({"type": "text", "text": prompt.user_text})
        return [{"role": "system", "content": prompt.system}, {"role": "user", "content": content}]

    def _chat_text(self, prompt: RenderedPrompt) -> str:
        return str(self.processor.apply_chat_template(self.chat_messages(prompt), tokenize=False,
                                                      add_generation_prompt=True))

    def _encode(self, prompts: Sequence[RenderedPrompt], params: GenParams) -> Any:
        return self._process([self._chat_text(p) for p in prompts], prompts, params)

    def _encode_after_prefix(self, prompts: Sequence[RenderedPrompt], params: GenParams, prefix: _Prefix) -> Any:
        """Tokenize only the conversation parts (what follows the system turn), or None.

        The processor splits its input at added special tokens before anything else and tokenizes
        the pieces independently, so a conversation part that starts with one (``<|im_start|>``,
        which does not absorb the whitespace before it) gets the same ids alone as inside the
        whole prompt: the whole prompt's ids are ``prefix.ids`` + these. ``_prefix_for`` checked
        that on a probe; here each prompt must render as the system turn followed by such a part.
        """
        if prefix.boundary is None:
            return None
        parts = []
        for p in prompts:
            text = self._chat_text(p)
            if not text.startswith(prefix.text) or not text.startswith(prefix.boundary, len(prefix.text)):
                return None
            parts.append(text[len(prefix.text):])
        return self._process(parts, prompts, params)

    def _process(self, texts: list[str], prompts: Sequence[RenderedPrompt], params: GenParams) -> Any:
        images = [img.to_pil() for p in prompts for img in p.images]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
            size = self._size_kwargs(params)
            if size:
                kwargs["size"] = size
        return self.processor(**kwargs)

    def _size_kwargs(self, params: GenParams) -> dict[str, int] | None:
        if params.min_pixels is None and params.max_pixels is None:
            return None
        current = dict(getattr(getattr(self.processor, "image_processor", None), "size", None) or {})
        size = {"shortest_edge": current.get("shortest_edge"), "longest_edge": current.get("longest_edge")}
        if params.min_pixels is not None:
            size["shortest_edge"] = params.min_pixels
        if params.max_pixels is not None:
            size["longest_edge"] = params.max_pixels
        return {k: int(v) for k, v in size.items() if v is not None}

    # --- worker entry ------------------------------------------------------------------------
    def _run_items(self, items: Sequence[WorkItem]) -> list[Generation | BaseException]:
        params: GenParams = items[0].group[0]  # type: ignore[index]
        prompts = [it.prompt for it in items]
        start = time.monotonic()
        with self.torch.inference_mode():
            if params.prefix_cache:
                out = self._generate_with_prefix(prompts, params)
            else:
                out = None
            if out is None:
                out = self._generate_plain(prompts, params)
        elapsed = time.monotonic() - start
        name = os.path.basename(self.path)
        gens: list[Generation | BaseException] = []
        for text, reason, usage in out:
            self.stats["prompt_tokens"] += usage["prompt_tokens"]
            self.stats["cached_tokens"] += usage.get("cached_tokens", 0)
            self.stats["completion_tokens"] += usage["completion_tokens"]
            gens.append(Generation(text=text, latency_s=elapsed, model=name, finish_reason=reason, usage=usage))
        return gens

    def _finish(self, token_ids: list[int], params: GenParams) -> tuple[str, str]:
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        if params.stop:
            # The answer ends at the first </answer> after the reasoning closed, never at one quoted
            # inside the reasoning (that would let a draft answer stand in for the verdict).
            end = stop_end(text, params.stop)
            if end is not None:
                return text[:end], "stop"  # keep the stop string; the parser accepts both
        if token_ids and token_ids[-1] in self.eos_ids:
            return text, "stop"
        return text, "length"

    def _stop_reached(self, token_ids: list[int], stops: tuple[str, ...]) -> bool:
        """Whether generation can stop: a stop string just appeared (cheap check on the last tokens)
        and the text so far holds an answer after the closed reasoning (full check, rarely run)."""
        tail = self.tokenizer.decode(token_ids[-_STOP_WINDOW_TOKENS:], skip_special_tokens=False)
        if not any(s in tail for s in stops):
            return False
        return stop_end(self.tokenizer.decode(token_ids, skip_special_tokens=True), stops) is not None

    def _stopping_criteria(self, params: GenParams) -> Any:
        """``transformers`` stopping criteria with ``_stop_reached`` (its own ``stop_strings`` would
        stop at the first ``</answer>``, inside the reasoning too)."""
        if not params.stop:
            return None
        from transformers import StoppingCriteria, StoppingCriteriaList

        backend = self
        torch = self.torch

        class _AnswerStop(StoppingCriteria):  # type: ignore[misc]
            prompt_len: int | None = None

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                if self.prompt_len is None:
                    self.prompt_len = int(input_ids.shape[1]) - 1  # first call: one token generated
                rows = input_ids[:, self.prompt_len :].tolist()
                done = [backend._stop_reached(row, params.stop) for row in rows]
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([_AnswerStop()])

    # --- plain path: transformers generate ---------------------------------------------------
    def generate_kwargs(self, params: GenParams) -> dict[str, Any]:
        """Greedy and nothing else: the checkpoint's sampling defaults (temperature, top_p,
        repetition_penalty) are switched off so both paths decode the same way."""
        return {
            "do_sample": False,
            "num_beams": 1,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "repetition_penalty": 1.0,
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": sorted(self.eos_ids),
            "pad_token_id": self.pad_id,
            "stopping_criteria": self._stopping_criteria(params),
        }

    def _generate_plain(self, prompts: Sequence[RenderedPrompt], params: GenParams) -> list[
        tuple[str, str, dict[str, int]]
    ]:
        self.stats["generate_batches"] += 1
        enc = self._encode(prompts, params).to(self.device)
        seqs = self.model.generate(**enc, **self.generate_kwargs(params))
        in_len = enc["input_ids"].shape[1]
        prompt_lens = enc["attention_mask"].sum(-1).tolist()
        out = []
        for row, plen in zip(seqs[:, in_len:].tolist(), prompt_lens, strict=True):
            toks = _trim_after_eos(row, self.eos_ids)
            text, reason = self._finish(toks, params)
            out.append((text, reason, {"prompt_tokens": int(plen), "completion_tokens": len(toks),
                                       "cached_tokens": 0}))
        return out

    # --- prefix path -------------------------------------------------------------------------
    def _prefix_for(self, system: str) -> _Prefix | None:
        """KV cache of the system turn, built on first use; None where reuse is not supported."""
        key = hashlib.sha256(system.encode()).hexdigest()
        if key in self._prefixes:
            self._prefixes.move_to_end(key)
            self.stats["prefix_hits"] += 1
            return self._prefixes[key]
        torch = self.torch
        text = self.processor.apply_chat_template(
            [{"role": "system", "content": system}], tokenize=False, add_generation_prompt=False
        )
        ids = self.processor(text=[text], return_tensors="pt")["input_ids"].to(self.device)
        n = ids.shape[1]
        cache = self._new_cache()
        out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=self._text_positions(n, 1),
                         use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
        cache = _out_cache(out) or cache
        prefix: _Prefix | None = None
        layers = getattr(cache, "layers", None)
        if layers and all(type(layer).__name__ == "DynamicLayer" for layer in layers):
            prefix = _Prefix(ids=ids[0].tolist(), kv=[(layer.keys, layer.values) for layer in layers], text=text)
            prefix.boundary = self._conversation_boundary(system, prefix)
        else:  # sliding-window / linear-attention caches cannot be extended by plain concatenation
            logger.info("prefix reuse disabled for %s: cache layers %s", self.path,
                        sorted({type(layer).__name__ for layer in layers or []}))
        self.stats["prefix_builds"] += 1
        self._prefixes[key] = prefix
        while len(self._prefixes) > self._prefix_cache_size:
            self._prefixes.popitem(last=False)
        return prefix

    def _conversation_boundary(self, system: str, prefix: _Prefix) -> str | None:
        """The added token that starts every conversation part, if conversation parts can be
        tokenized alone (see ``_encode_after_prefix``); checked on a probe prompt, else None."""
        from ..inputs import Modality

        probe = RenderedPrompt(Modality.TEXT, system, "Probe: caf\u00e9  \u00e9\u0301 text\n<|im_end|> end", ())
        whole = self._chat_text(probe)
        if not whole.startswith(prefix.text):
            return None
        part = whole[len(prefix.text):]
        added = {t.content: t for t in getattr(self.tokenizer, "added_tokens_decoder", {}).values()}
        boundary = next((t for t in sorted(added, key=len, reverse=True) if part.startswith(t)), None)
        if boundary is None or getattr(added[boundary], "lstrip", True):
            return None
        ids = self.processor(text=[whole])["input_ids"][0]
        alone = self.processor(text=[part])["input_ids"][0]
        if list(ids) != prefix.ids + list(alone):
            logger.info("conversation parts of %s do not tokenize alone; tokenizing whole prompts", self.path)
            return None
        return boundary

    def _new_cache(self, kv: list[tuple[Any, Any]] | None = None, batch: int = 1, capacity: int = 0) -> Any:
        """An empty cache, or the stored prefix copied for ``batch`` rows into buffers with room
        for ``capacity`` tokens in total (the stored prefix itself is never written to)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if kv is not None:
            cache.layers = [_preallocated_layer(k, v, batch, capacity) for k, v in kv]
        return cache

    def _text_positions(self, length: int, batch: int, offset: int = 0) -> Any:
        pos = self.torch.arange(offset, offset + length, device=self.device).view(1, 1, -1).expand(
            3 if self._rope_index else 1, batch, -1)
        return pos if self._rope_index else pos[0]

    def _generate_with_prefix(self, prompts: Sequence[RenderedPrompt], params: GenParams) -> list[
        tuple[str, str, dict[str, int]]
    ] | None:
        state = self.prefill_with_prefix(prompts, params)
        if state is None:
            return None
        tokens = self._greedy_loop(state.logits, state.cache, state.mask, state.next_pos, params)
        results = []
        for toks, plen in zip(tokens, state.prompt_lens, strict=True):
            text, reason = self._finish(toks, params)
            results.append((text, reason, {"prompt_tokens": plen, "completion_tokens": len(toks),
                                           "cached_tokens": state.n_prefix}))
        return results

    def prefill_with_prefix(self, prompts: Sequence[RenderedPrompt], params: GenParams) -> _Prefilled | None:
        """Prefill the conversations on top of the cached system turn (worker thread or tests only).

        Returns the last-position logits and the cache ready for decoding, or None where reuse
        does not apply (several system prompts, unsupported cache type, tokenization mismatch).
        """
        torch = self.torch
        systems = {p.system for p in prompts}
        if len(systems) != 1:  # the batch group includes the system text; this is a safety net
            return None
        prefix = self._prefix_for(systems.pop())
        if prefix is None:
            return None
        n_prefix = len(prefix.ids)
        # The system turn's ids are cached: tokenize only the conversations where that is exact.
        enc = self._encode_after_prefix(prompts, params, prefix)
        skip = 0
        if enc is None:
            enc, skip = self._encode(prompts, params), n_prefix
        else:
            self.stats["conversation_only_encodes"] += 1
        prefix_t = torch.tensor(prefix.ids)
        ids_rows, type_rows = [], []
        has_types = "mm_token_type_ids" in enc
        if "pixel_values" in enc and self._rope_index is not None and not has_types:
            return None  # M-RoPE positions of images cannot be rebuilt without the token types
        for i in range(len(prompts)):
            keep = enc["attention_mask"][i].bool()
            row = enc["input_ids"][i][keep]
            # Whole prompts: the system turn must tokenize identically alone and inside the full
            # prompt, and the conversation must add at least one token; otherwise reuse would
            # change the input.
            if row.shape[0] <= skip or (skip and not torch.equal(row[:skip], prefix_t)):
                self.stats["prefix_fallbacks"] += 1
                logger.debug("prefix mismatch for %s; generating without reuse", self.path)
                return None
            ids_rows.append(row[skip:])
            if has_types:
                type_rows.append(enc["mm_token_type_ids"][i][keep][skip:])
        batch = len(prompts)
        width = max(r.shape[0] for r in ids_rows)
        suffix_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        suffix_mask = torch.zeros((batch, width), dtype=torch.long)
        suffix_types = torch.zeros((batch, width), dtype=torch.long)
        for i, row in enumerate(ids_rows):
            suffix_ids[i, width - row.shape[0]:] = row
            suffix_mask[i, width - row.shape[0]:] = 1
            if has_types:
                suffix_types[i, width - row.shape[0]:] = type_rows[i]
        dev = self.device
        suffix_ids, suffix_mask, suffix_types = suffix_ids.to(dev), suffix_mask.to(dev), suffix_types.to(dev)

        # Positions as if there were no padding: M-RoPE of the conversation alone, shifted by the
        # prefix length (every position in get_rope_index is relative to the running offset).
        image_grid = enc.get("image_grid_thw")
        extra: dict[str, Any] = {}
        if "pixel_values" in enc:
            extra["pixel_values"] = enc["pixel_values"].to(dev, self.model.dtype)
            extra["image_grid_thw"] = image_grid.to(dev)
        if self._rope_index is not None:
            pos, _ = self._rope_index(
                suffix_ids, mm_token_type_ids=suffix_types,
                image_grid_thw=image_grid.to(dev) if image_grid is not None else None,
                attention_mask=suffix_mask,
            )
            pos = pos + n_prefix
        else:
            pos = (suffix_mask.cumsum(-1) - 1).clamp(min=0) + n_prefix
        next_pos = pos.reshape(-1, batch, width).amax(dim=(0, 2)) + 1  # per row

        mask = torch.cat([torch.ones((batch, n_prefix), dtype=torch.long, device=dev), suffix_mask], dim=1)
        cache = self._new_cache(prefix.kv, batch, capacity=mask.shape[1] + params.max_new_tokens)
        self.stats["reuse_batches"] += 1
        out = self.model(input_ids=suffix_ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=1, **{self._cache_kw: cache}, **extra)
        return _Prefilled(
            logits=out.logits[:, -1, :], cache=_out_cache(out) or cache, mask=mask, next_pos=next_pos,
            n_prefix=n_prefix, prompt_lens=[n_prefix + r.shape[0] for r in ids_rows],
        )

    def _greedy_loop(self, logits: Any, cache: Any, mask: Any, next_pos: Any, params: GenParams) -> list[list[int]]:
        """Argmax decoding; each row stops at an EOS token or once its answer is complete (``_stop_reached``)."""
        torch = self.torch
        batch = logits.shape[0]
        generated: list[list[int]] = [[] for _ in range(batch)]
        done = [False] * batch
        stops = params.stop
        for step in range(params.max_new_tokens):
            chosen = logits.argmax(dim=-1)
            for i, tok in enumerate(chosen.tolist()):
                if done[i]:
                    continue
                generated[i].append(tok)
                if tok in self.eos_ids:
                    done[i] = True
                elif stops and self._stop_reached(generated[i], stops):
                    done[i] = True
            if all(done) or step == params.max_new_tokens - 1:
                break
            feed = torch.tensor([[self.pad_id if done[i] else generated[i][-1]] for i in range(batch)],
                                device=self.device)
            mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=mask.device)], dim=1)
            if self._rope_index is not None:
                pos = next_pos.view(1, batch, 1).expand(3, batch, 1)
            else:
                pos = next_pos.view(batch, 1)
            out = self.model(input_ids=feed, attention_mask=mask, position_ids=pos, use_cache=True,
                             **{self._cache_kw: cache})
            cache = _out_cache(out) or cache
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        return generated


def _preallocated_layer(keys: Any, values: Any, batch: int, capacity: int) -> Any:
    """A DynamicLayer that writes new tokens into preallocated buffers instead of concatenating.

    ``DynamicLayer.update`` copies the whole cache at every decoding step (``torch.cat``); with a
    long shared prefix and a batch that copy dominates decoding. Here the buffers are sized once
    for prompt + max_new_tokens and each step writes one slice; attention reads a view.
    """
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def __init__(self) -> None:
            super().__init__()
            b, h, n, d = batch, keys.shape[1], keys.shape[2], keys.shape[3]
            cap = max(capacity, n)
            self._k = keys.new_empty((b, h, cap, d))
            self._v = values.new_empty((b, h, cap, values.shape[3]))
            self._k[:, :, :n] = keys
            self._v[:, :, :n] = values
            self._n = n
            self.device = keys.device
            self.is_initialized = True
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            n, k = self._n, key_states.shape[-2]
            if n + k > self._k.shape[2]:  # out of room: fall back to concatenation
                import torch

                self._k = torch.cat([self._k[:, :, :n], key_states], dim=-2)
                self._v = torch.cat([self._v[:, :, :n], value_states], dim=-2)
            else:
                self._k[:, :, n:n + k] = key_states
                self._v[:, :, n:n + k] = value_states
            self._n = n + k
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self._n

    return PreallocatedLayer()


def _out_cache(out: Any) -> Any:
    for name in ("cache", "past_key_values"):
        val = getattr(out, name, None)
        if val is not None:
            return val
    return None


def _trim_after_eos(row: list[int], eos: set[int]) -> list[int]:
    for i, tok in enumerate(row):
        if tok in eos:
            return row[: i + 1]
    return row


# ---------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------


class WorkerBackend(Backend):
    """Shared plumbing of the in-process backends: prompts go to the model's worker thread as
    futures; async callers await them without blocking the loop; closing drops this backend's
    reference to the shared model or engine. Subclasses set ``_shared`` (with ``.worker`` and
    ``.stats``), ``_finalizer``, ``timeout`` and implement ``submit``."""

    _shared: Any
    _finalizer: Any
    _closed: bool = False
    loop_bound = False  # results come back as thread-safe futures, awaitable from any loop
    timeout: float | None = None

    def submit(self, prompts: Sequence[RenderedPrompt]) -> list[concurrent.futures.Future[Generation]]:
        raise NotImplementedError

    @property
    def stats(self) -> dict[str, int]:
        """Counters of the shared model or engine and of its worker."""
        w = self._shared.worker
        return {**self._shared.stats, "worker_batches": w.batches, "worker_items": w.items,
                "largest_batch": w.largest_batch}

    async def agenerate(self, prompt: RenderedPrompt) -> Generation:
        (result,) = await self.agenerate_batch([prompt])
        if isinstance(result, BaseException):
            raise result
        return result

    async def agenerate_batch(self, prompts: Sequence[RenderedPrompt]) -> list[Generation | BaseException]:
        if not prompts:
            return []
        return await await_futures(self.submit(prompts), self.timeout)

    def generate_batch(self, prompts: Sequence[RenderedPrompt]) -> list[Generation | BaseException]:
        """Blocking batch generation for scripts (works from any thread, no event loop needed)."""
        if not prompts:
            return []
        return wait_futures(self.submit(prompts), self.timeout)

    def generate(self, prompt: RenderedPrompt) -> Generation:
        (result,) = self.generate_batch([prompt])
        if isinstance(result, BaseException):
            raise result
        return result

    async def aclose(self) -> None:
        """Drop this backend's reference; the model is freed when no backend uses it any more."""
        self._closed = True
        self._finalizer()

    def close(self) -> None:  # no event loop needed
        self._closed = True
        self._finalizer()


class TransformersBackend(WorkerBackend):
    """ProGuard weights loaded in-process with ``transformers`` (GPU or CPU).

    >>> backend = TransformersBackend("/models/ProGuard-7B")          # doctest: +SKIP
    >>> guard = ProGuard(backend=backend)                             # doctest: +SKIP

    Or let the settings pick it: ``PROGUARD_MODEL_PATH=/models/ProGuard-7B`` (and optionally
    ``PROGUARD_BACKEND=transformers``, ``PROGUARD_DEVICE``, ``PROGUARD_DTYPE``).

    Args:
        model_path: local checkpoint folder (Qwen2.5-VL / Qwen3-VL style, e.g. ProGuard-7B).
        settings: ``ProGuardSettings``; ``device``, ``dtype`` and ``max_tokens`` come from it.
        device: ``cuda``, ``cuda:1``, ``cpu`` or ``auto`` (accelerate device map over all GPUs).
            Default: cuda if available, else cpu.
        dtype: ``bfloat16`` / ``float16`` / ``float32`` / ``auto``. Default: bf16 on GPU, float32 on CPU.
        max_new_tokens: generation cap per check (default ``settings.max_tokens``).
        batch_size: prompts per forward pass; larger is faster until memory runs out.
        prefix_cache: reuse the system prompt's KV cache across checks (same outputs, less prefill).
        min_pixels / max_pixels: image size bounds given to the processor (default: the checkpoint's).
        timeout: seconds a call waits for its results (queueing included); None waits as long as
            generation takes (it is bounded by ``max_new_tokens``).
        attn_implementation: passed to ``from_pretrained`` (``sdpa``, ``flash_attention_2``, ...).
        prefix_cache_size: system prompts whose caches are kept per model (LRU; the first backend
            that loads a model sets it).

    Every backend on the same (path, device, dtype, attention) shares one loaded model and its
    worker thread; the model is freed when the last of them is closed or garbage collected.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        settings: ProGuardSettings | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 16,
        prefix_cache: bool = True,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        timeout: float | None = None,
        attn_implementation: str | None = None,
        prefix_cache_size: int = 8,
    ) -> None:
        s = settings or ProGuardSettings()
        torch, _ = _import_torch_transformers()
        path = _check_checkpoint_folder(model_path)
        dev, dt = _resolve_device_dtype(torch, device or s.device, dtype or s.dtype)
        if batch_size < 1:
            raise ConfigurationError("batch_size must be >= 1")
        self.model_path = path
        self.params = GenParams(
            max_new_tokens=int(max_new_tokens or s.max_tokens),
            prefix_cache=bool(prefix_cache),
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            stop=tuple(STOP_SEQUENCES),
        )
        self.batch_size = int(batch_size)
        self.timeout = timeout
        self._key = (path, dt, dev, attn_implementation or "")
        self._shared: SharedModel = _MODELS.acquire(
            self._key, lambda: SharedModel(path, dev, dt, attn_implementation, prefix_cache_size)
        )
        self._closed = False
        self._finalizer = weakref.finalize(self, _MODELS.release, self._key)

    # --- introspection -----------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The shared ``transformers`` model (the same object for every backend on this path)."""
        return self._shared.model

    @property
    def processor(self) -> Any:
        return self._shared.processor

    @property
    def shared(self) -> SharedModel:
        return self._shared

    def identity(self) -> str:
        return f"transformers:{os.path.basename(self.model_path)}"

    def __repr__(self) -> str:
        return (f"TransformersBackend({self.model_path!r}, device={self._key[2]!r}, dtype={self._key[1]!r}, "
                f"batch_size={self.batch_size}, prefix_cache={self.params.prefix_cache})")

    # --- generation --------------------------------------------------------------------------
    def _group(self, prompt: RenderedPrompt) -> Hashable:
        # Reuse batches need one shared system prompt; plain batches can mix modalities.
        system = prompt.system if self.params.prefix_cache else ""
        return (self.params, system)

    def submit(self, prompts: Sequence[RenderedPrompt]) -> list[concurrent.futures.Future[Generation]]:
        """Queue prompts on the model's worker; returns one future per prompt (thread-safe)."""
        if self._closed:
            raise BackendError("TransformersBackend is closed; create a new one")
        futures: list[concurrent.futures.Future[Generation] | None] = [None] * len(prompts)
        # Prompts of one group are queued together so they batch together.
        for group, idxs in _group_indices(prompts, self._group).items():
            subs = self._shared.worker.submit([prompts[i] for i in idxs], group, self.batch_size)
            for i, fut in zip(idxs, subs, strict=True):
                futures[i] = fut
        return [f for f in futures if f is not None]

def _group_indices(prompts: Sequence[RenderedPrompt], key: Callable[[RenderedPrompt], Hashable]) -> dict[
    Hashable, list[int]
]:
    """Indices of the prompts grouped by key, in order within each group."""
    groups: dict[Hashable, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(key(p), []).append(i)
    return groups


__all__ = [
    "BatchWorker",
    "WorkerBackend",
    "GenParams",
    "SharedModel",
    "SharedRegistry",
    "TransformersBackend",
    "loaded_models",
]
