"""In-process vLLM: ProGuard weights served by ``vllm.LLM`` inside the application, no HTTP hop.

vLLM brings continuous batching, paged attention and automatic prefix caching (the system prompt
with the policy is computed once and shared by every request that starts with it). This backend
adds what the guard needs around it: one engine per checkpoint shared by every guard in the
process (an engine reserves most of the GPU's memory, so a second copy would not even fit), one
worker thread that owns the engine and coalesces concurrent calls into ``LLM.chat`` batches, and
greedy decoding that stops at the ``</answer>`` after the reasoning (an output stopped at one
quoted inside the reasoning is continued). Event loops only await futures.

``vllm`` is imported when a backend is built (``pip install 'proguard-rails[vllm]'``); it needs a
supported GPU. For a separate server, run ``vllm serve`` and use ``OpenAIBackend`` instead.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import time
import weakref
from collections.abc import Hashable, Sequence
from typing import Any

from ..errors import BackendError, ConfigurationError, MissingDependencyError
from ..protocol import RenderedPrompt
from ..settings import ProGuardSettings
from .base import STOP_SEQUENCES, Generation, stop_end
from .transformers_local import BatchWorker, SharedRegistry, WorkerBackend, WorkItem

logger = logging.getLogger("proguard_rails.backends.vllm")

_ENGINES = SharedRegistry()
#: At most this many continuations after stops inside the reasoning (each one also spends tokens).
_MAX_CONTINUATIONS = 8


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise MissingDependencyError("vllm", "vllm", "the in-process vLLM backend (it needs a CUDA GPU)") from exc
    return vllm


@dataclasses.dataclass(frozen=True)
class VLLMParams:
    """Sampling settings of one backend; only prompts with equal params share an ``LLM.chat`` call."""

    max_tokens: int
    stop: tuple[str, ...]


class SharedEngine:
    """One ``vllm.LLM`` and the worker thread that owns it."""

    def __init__(self, path: str, engine_kwargs: dict[str, Any]) -> None:
        vllm = _import_vllm()
        self.vllm = vllm
        self.path = path
        self.engine_kwargs = dict(engine_kwargs)
        try:
            self.llm = vllm.LLM(model=path, **engine_kwargs)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"vLLM could not load {path!r} with {engine_kwargs}: {exc}") from exc
        self.stats = {"chat_calls": 0, "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
        self.worker = BatchWorker(self._run_items, name=f"proguard-vllm:{os.path.basename(path)}")

    def sampling_params(self, params: VLLMParams) -> Any:
        # Greedy and nothing else: no repetition penalty or other checkpoint sampling defaults.
        return self.vllm.SamplingParams(
            temperature=0.0,
            max_tokens=params.max_tokens,
            stop=list(params.stop),
            include_stop_str_in_output=True,  # same text as the transformers backend
            repetition_penalty=1.0,
            skip_special_tokens=True,
        )

    def _run_items(self, items: Sequence[WorkItem]) -> list[Generation | BaseException]:
        params: VLLMParams = items[0].group  # type: ignore[assignment]
        start = time.monotonic()
        self.stats["chat_calls"] += 1
        outputs = self.llm.chat(
            [it.prompt.to_messages() for it in items],
            self.sampling_params(params),
            use_tqdm=False,
        )
        elapsed = time.monotonic() - start
        if len(outputs) != len(items):
            raise BackendError(f"vLLM returned {len(outputs)} outputs for {len(items)} prompts")
        name = os.path.basename(self.path)
        results: list[Generation | BaseException] = []
        for out in outputs:
            completions = getattr(out, "outputs", None) or []
            if not completions:
                results.append(BackendError("vLLM returned no completion"))
                continue
            first = completions[0]
            usage = {
                "prompt_tokens": len(getattr(out, "prompt_token_ids", None) or []),
                "completion_tokens": len(getattr(first, "token_ids", None) or []),
                "cached_tokens": int(getattr(out, "num_cached_tokens", 0) or 0),
            }
            for k in ("prompt_tokens", "completion_tokens", "cached_tokens"):
                self.stats[k] += usage[k]
            results.append(Generation(text=first.text, latency_s=elapsed, model=name,
                                      finish_reason=getattr(first, "finish_reason", None), usage=usage))
        self._continue_cut_reasoning(items, results, params)
        return results

    def _continue_cut_reasoning(self, items: Sequence[WorkItem], results: list[Generation | BaseException],
                                params: VLLMParams) -> None:
        """vLLM stops at the first ``</answer>``, also one the model quotes inside its reasoning; such an
        output holds no final answer yet. Those generations continue from where they stopped (the
        partial text as the assistant's message), within ``max_tokens``, until the answer after the
        closed reasoning ends or the budget is spent (then the parser reports an unreadable answer)."""
        for _ in range(_MAX_CONTINUATIONS):
            pending = [
                k for k, r in enumerate(results)
                if isinstance(r, Generation) and r.finish_reason == "stop"
                and any(r.text.endswith(stop) for stop in params.stop) and stop_end(r.text, params.stop) is None
                and r.usage.get("completion_tokens", 0) < params.max_tokens
            ]
            if not pending:
                return
            convs, sps = [], []
            for k in pending:
                gen = results[k]
                assert isinstance(gen, Generation)
                convs.append(items[k].prompt.to_messages() + [{"role": "assistant", "content": gen.text}])
                left = params.max_tokens - int(gen.usage.get("completion_tokens", 0))
                sps.append(self.sampling_params(dataclasses.replace(params, max_tokens=left)))
            self.stats["chat_calls"] += 1
            outputs = self.llm.chat(convs, sps, use_tqdm=False, add_generation_prompt=False,
                                    continue_final_message=True)
            if len(outputs) != len(pending):
                raise BackendError(f"vLLM returned {len(outputs)} outputs for {len(pending)} continuations")
            for k, out in zip(pending, outputs, strict=True):
                gen = results[k]
                assert isinstance(gen, Generation)
                completions = getattr(out, "outputs", None) or []
                if not completions:
                    results[k] = BackendError("vLLM returned no completion for a continuation")
                    continue
                more = completions[0]
                n = len(getattr(more, "token_ids", None) or [])
                self.stats["completion_tokens"] += n
                gen.text += more.text
                gen.usage["completion_tokens"] = int(gen.usage.get("completion_tokens", 0)) + n
                gen.finish_reason = getattr(more, "finish_reason", None)

    def close(self) -> None:
        self.worker.close()
        # vLLM frees GPU memory when the engine is garbage collected; drop our reference.
        self.llm = None


def _engine_key(path: str, kwargs: dict[str, Any]) -> Hashable:
    return (path, json.dumps(kwargs, sort_keys=True, default=repr))


class VLLMBackend(WorkerBackend):
    """ProGuard on an in-process vLLM engine.

    >>> backend = VLLMBackend("/models/ProGuard-7B", gpu_memory_utilization=0.6)   # doctest: +SKIP
    >>> guard = ProGuard(backend=backend)                                           # doctest: +SKIP

    Or through the settings: ``PROGUARD_MODEL_PATH=/models/ProGuard-7B PROGUARD_BACKEND=vllm``.

    Args:
        model_path: local checkpoint folder.
        settings: ``ProGuardSettings`` (``max_tokens``, ``dtype``, ``max_images`` are used).
        max_tokens: generation cap per check (default ``settings.max_tokens``).
        batch_size: prompts per ``LLM.chat`` call; vLLM schedules them continuously inside it.
        timeout: seconds a call waits for its results; None waits as long as generation takes.
        min_pixels / max_pixels: image size bounds for the Qwen-VL processor.
        **engine_kwargs: passed to ``vllm.LLM`` (``gpu_memory_utilization``, ``max_model_len``,
            ``tensor_parallel_size``, ``enforce_eager``, ...). Defaults set here:
            ``enable_prefix_caching=True``, ``limit_mm_per_prompt={"image": settings.max_images}``,
            ``dtype`` from the settings (else ``auto``), ``seed=0``.

    Backends with the same path and engine arguments share one engine.
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        settings: ProGuardSettings | None = None,
        max_tokens: int | None = None,
        batch_size: int = 256,
        timeout: float | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        **engine_kwargs: Any,
    ) -> None:
        s = settings or ProGuardSettings()
        _import_vllm()  # fail early, with the extra to install, before touching the path
        path = os.path.realpath(os.path.expanduser(os.fspath(model_path)))
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
            raise ConfigurationError(
                f"model_path {os.fspath(model_path)!r} is not a local checkpoint folder (no config.json); "
                "set model_path= or PROGUARD_MODEL_PATH to the downloaded weights"
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size must be >= 1")
        kwargs: dict[str, Any] = {
            "enable_prefix_caching": True,
            "limit_mm_per_prompt": {"image": s.max_images},
            "dtype": s.dtype or "auto",
            "seed": 0,
        }
        if min_pixels is not None or max_pixels is not None:
            mm = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
            kwargs["mm_processor_kwargs"] = mm
        kwargs.update(engine_kwargs)
        self.model_path = path
        self.engine_kwargs = kwargs
        self.params = VLLMParams(max_tokens=int(max_tokens or s.max_tokens), stop=tuple(STOP_SEQUENCES))
        self.batch_size = int(batch_size)
        self.timeout = timeout
        self._key = _engine_key(path, kwargs)
        self._shared: SharedEngine = _ENGINES.acquire(self._key, lambda: SharedEngine(path, kwargs))
        self._closed = False
        self._finalizer = weakref.finalize(self, _ENGINES.release, self._key)

    @property
    def llm(self) -> Any:
        """The shared ``vllm.LLM`` engine."""
        return self._shared.llm

    @property
    def shared(self) -> SharedEngine:
        return self._shared

    def identity(self) -> str:
        return f"vllm:{os.path.basename(self.model_path)}"

    def __repr__(self) -> str:
        return f"VLLMBackend({self.model_path!r}, batch_size={self.batch_size})"

    def submit(self, prompts: Sequence[RenderedPrompt]) -> list[concurrent.futures.Future[Generation]]:
        if self._closed:
            raise BackendError("VLLMBackend is closed; create a new one")
        return self._shared.worker.submit(prompts, self.params, self.batch_size)


__all__ = ["SharedEngine", "VLLMBackend", "VLLMParams"]
