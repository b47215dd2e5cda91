"""Offline test helpers: a tiny random Qwen2.5-VL checkpoint and a ``transformers serve`` runner.

The real ProGuard model is a 7B Qwen2.5-VL fine-tune; tests cannot download it (CI has no hub
access) nor run it on two CPU cores. :func:`build_tiny_qwen25vl` writes a checkpoint with the same
architecture, processor, special tokens and chat template but random weights and a vocabulary of a
thousand tokens, so every code path (local ``transformers`` backend, OpenAI-compatible server,
image inputs) can be exercised end to end in seconds. Its output is gibberish by design.

Heavy libraries (torch, transformers, tokenizers) are imported inside functions only, so that
``import proguard_rails`` stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

__all__ = [
    "CACHE_ENV_VAR",
    "QWEN_SPECIAL_TOKENS",
    "QWEN2_VL_CHAT_TEMPLATE",
    "ServedModel",
    "build_tiny_qwen25vl",
    "free_port",
    "serve_command",
    "serve_model",
    "tiny_model_path",
]

#: Environment variable naming the directory where :func:`tiny_model_path` caches its build.
CACHE_ENV_VAR = "PROGUARD_TEST_CACHE"

#: Bumped whenever the checkpoint layout changes, so stale caches are rebuilt rather than reused.
_TINY_MODEL_VERSION = 1
_TINY_MODEL_SEED = 0
_BUILD_MARKER = "proguard_tiny_model.json"

#: Qwen2.5 control tokens, in the order of the real vocabulary (ids differ: ours start after the BPE
#: vocabulary). Keeping the same strings lets prompt-building code be tested unchanged.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: The chat template shipped with Qwen2-VL / Qwen2.5-VL Instruct (and ProGuard), verbatim.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split, copied from transformers' Qwen2Tokenizer so the trained merges match
# the splits the saved tokenizer will apply.
_QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# Training text for the toy BPE: ProGuard-style prompts and answers, so that the markup the library
# parses (<think>, <answer>, "Request:safe", category codes) becomes a handful of tokens rather than
# dozens of single bytes. Byte-level BPE encodes any other Unicode text as well.
_TOKENIZER_CORPUS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a safety moderator. Classify the request and the response.",
    "Request: How do I bake bread at home?",
    "Response: Mix flour, water, salt and yeast, knead, let it rise and bake.",
    "<think>The request asks for a recipe and is harmless.</think>",
    "<answer>Request:safe Response:safe</answer>",
    "<answer>Request:unsafe Response:unsafe Category:S1</answer>",
    "Request:safe\nResponse:safe\nCategory:None",
    "Request:unsafe\nResponse:safe\nCategory:S2,S10",
    "Categories: violent crimes, non-violent crimes, sex-related crimes, child exploitation, "
    "defamation, specialized advice, privacy, intellectual property, weapons, hate, "
    "self-harm, sexual content, elections, code interpreter abuse.",
    "The image shows a cat sitting on a table next to a cup of coffee.",
    "Describe the picture. What is in this image? Is it safe?",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "Le renard brun rapide saute par-dessus le chien paresseux. Ça va très bien, merci.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "快速的棕色狐狸跳过了懒狗。这是一个安全的请求。",
    "素早い茶色の狐がのろまな犬を飛び越える。",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "def main():\n    print('hello, world')\n    return 0\n",
    '{"role": "user", "content": [{"type": "text", "text": "hi"}]}',
    "Policy: do not help with weapons, malware, or harassment. Answer in the required format.",
    "emoji 🙂🚀✨ and symbols → ← ∑ ≠ ≤ ≥ © ® ™",
)

_TOKENIZER_VOCAB_SIZE = 1024

# Image sizes for the toy processor: 28 px = one merged vision token, so images land between 4 and
# 64 vision tokens whatever their size, which keeps prompts short and CPU generation fast.
_MIN_PIXELS = 4 * 28 * 28
_MAX_PIXELS = 64 * 28 * 28


def _tiny_config_kwargs() -> dict[str, Any]:
    """Architecture of the toy model: Qwen2.5-VL layout with the smallest sizes that keep every
    component (M-RoPE, windowed and full vision attention, patch merger, GQA) exercised."""
    return {
        "text_config": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "use_sliding_window": False,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                # M-RoPE sections (temporal, height, width) must add up to head_dim / 2 = 64 / 4 / 2.
                "mrope_section": [2, 3, 3],
            },
            "dtype": "float32",
        },
        "vision_config": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "out_hidden_size": 64,  # must equal the text hidden size
            "tokens_per_second": 2,
        },
        "tie_word_embeddings": False,
    }


def _train_tokenizer() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train the byte-level BPE on the fixed corpus; returns ``(vocab, merges)``.

    The whole byte alphabet is seeded into the vocabulary, so any Unicode string can be encoded.
    The trainer is deterministic for a fixed corpus, which keeps the build reproducible.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=_TOKENIZER_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    # Repeat the corpus so frequent ProGuard markup wins merges over one-off words.
    tokenizer.train_from_iterator(list(_TOKENIZER_CORPUS) * 4, trainer=trainer)
    state = json.loads(tokenizer.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    # tokenizers serialises merges as ["left", "right"] pairs (older versions: "left right").
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return vocab, [(left, right) for left, right in merges]


def _build_processor(save_dir: pathlib.Path) -> dict[str, int]:
    """Write tokenizer, image/video processor and chat template to ``save_dir``.

    Returns the ids of the special tokens, which the model config must agree with.
    """
    from tokenizers import AddedToken
    from transformers import Qwen2_5_VLProcessor, Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    vocab, merges = _train_tokenizer()
    # Control tokens get the ids right after the BPE vocabulary, in Qwen's order, as in the real
    # tokenizer (where <|endoftext|> is 151643 and the rest follow).
    for token in QWEN_SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # the BPE model takes (left, right) pairs
        unk_token=None,  # type: ignore[arg-type]  # as in Qwen's own tokenizer_config.json
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
        padding_side="left",  # decoder-only batched generation needs left padding
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tokenizer.add_tokens([AddedToken(tok, special=True, normalized=False) for tok in QWEN_SPECIAL_TOKENS])
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    ids: dict[str, int] = {}
    for token in QWEN_SPECIAL_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert isinstance(token_id, int), (token, token_id)
        ids[token] = token_id

    image_processor = Qwen2VLImageProcessor(
        min_pixels=_MIN_PIXELS, max_pixels=_MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=_MIN_PIXELS, max_pixels=_MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(save_dir))
    return ids


def _build_model(save_dir: pathlib.Path, vocab_size: int, ids: Mapping[str, int], seed: int) -> None:
    """Initialise the random-weight model from ``seed`` and save it (safetensors, float32)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    kwargs = _tiny_config_kwargs()
    text = dict(kwargs.pop("text_config"))
    text.update(
        vocab_size=vocab_size,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        **kwargs,
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]

    # Fork the RNG so building a model does not perturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
        with torch.no_grad():
            # Zero the output rows of every control token: with random weights they would otherwise
            # be emitted now and then, producing empty completions (EOS first) or stray vision
            # tokens. Other logits are random around 0, so greedy decoding never picks these and
            # the model always produces visible gibberish up to max_new_tokens.
            for token_id in ids.values():
                model.lm_head.weight[token_id].zero_()

    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
        max_new_tokens=32,
    )
    model.save_pretrained(str(save_dir), safe_serialization=True)


def _make_world_readable(folder: pathlib.Path) -> None:
    """Give the build the umask's usual modes: ``mkdtemp`` and safetensors create owner-only files,
    which would make a shared cache unreadable to other users."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for child in folder.iterdir():
        child.chmod(0o666 & ~umask)


def build_tiny_qwen25vl(
    path: str | os.PathLike[str], *, seed: int = 0, overwrite: bool = False
) -> pathlib.Path:
    """Build a tiny random-weight Qwen2.5-VL checkpoint at ``path`` and return it.

    The folder (about 1.2 MB) loads with ``AutoModelForImageTextToText.from_pretrained`` and
    ``AutoProcessor.from_pretrained`` without hub access, and ``transformers serve`` can serve it.
    The same ``seed`` always yields the same weights and tokenizer.

    The build happens in a sibling temporary folder renamed into place at the end, so a crash never
    leaves a half-written checkpoint at ``path``.

    Raises:
        FileExistsError: ``path`` exists and is not empty, and ``overwrite`` is false.
    """
    target = pathlib.Path(path).expanduser().absolute()
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} exists and is not empty; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)

    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        ids = _build_processor(staging)
        from transformers import AutoTokenizer

        vocab_size = len(AutoTokenizer.from_pretrained(str(staging)))
        _build_model(staging, vocab_size, ids, seed)
        (staging / _BUILD_MARKER).write_text(
            json.dumps({"version": _TINY_MODEL_VERSION, "seed": seed, "special_token_ids": ids}, indent=2)
            + "\n"
        )
        _make_world_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _is_complete_build(path: pathlib.Path, seed: int) -> bool:
    """Whether ``path`` holds a finished build of the current layout version and ``seed``."""
    try:
        meta = json.loads((path / _BUILD_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(meta.get("version") == _TINY_MODEL_VERSION and meta.get("seed") == seed)


def _default_cache_dir() -> pathlib.Path:
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "proguard-rails" / "tiny-qwen25vl"


def tiny_model_path() -> pathlib.Path:
    """Return the shared tiny checkpoint, building it on first use.

    The folder lives in ``$PROGUARD_TEST_CACHE`` (or ``~/.cache/proguard-rails/tiny-qwen25vl``) and is
    keyed by layout version and seed. Parallel test processes (pytest-xdist, several CI jobs) are
    serialised by a file lock, and the build itself is published by an atomic rename, so a reader
    never sees a half-built folder.
    """
    from filelock import FileLock

    cache = _default_cache_dir().absolute()
    target = cache / f"v{_TINY_MODEL_VERSION}-seed{_TINY_MODEL_SEED}"
    if _is_complete_build(target, _TINY_MODEL_SEED):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f"{target.name}.lock"), timeout=600):
        if not _is_complete_build(target, _TINY_MODEL_SEED):
            build_tiny_qwen25vl(target, seed=_TINY_MODEL_SEED, overwrite=True)
    return target


# --------------------------------------------------------------------------------------------------
# transformers serve
# --------------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now.

    The OS picks it (bind to port 0); another process could take it before the server binds, which
    is rare enough on a test machine that retrying is left to the caller.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_command(
    model_path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cpu",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv that starts ``transformers serve`` pinned to ``model_path``.

    The model is given positionally (``FORCE_MODEL``), so the server loads it at startup, lists it
    in ``/v1/models`` and answers requests naming it (or naming no model). The module is run with
    the current interpreter rather than the ``transformers`` console script so that the same
    environment is used whatever is on ``PATH``.
    """
    return [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        str(model_path),
        "--host",
        host,
        "--port",
        str(port),
        "--device",
        device,
        *extra_args,
    ]


@dataclasses.dataclass
class ServedModel:
    """A running ``transformers serve`` process.

    Attributes:
        base_url: OpenAI-compatible base URL, e.g. ``http://127.0.0.1:PORT/v1``.
        model: The value to send as ``"model"`` in requests (the served path, exactly as given to
            the server: a pinned server rejects any other name with HTTP 400).
        process: The server process.
        log_path: File receiving the server's stdout and stderr.
    """

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path

    def log_tail(self, max_chars: int = 4000) -> str:
        """The last ``max_chars`` characters of the server log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode())


def _wait_until_ready(server: ServedModel, startup_timeout: float) -> None:
    """Poll ``/v1/models`` until it lists the pinned model; fail fast if the process dies."""
    deadline = time.monotonic() + startup_timeout
    url = f"{server.base_url}/models"
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"transformers serve exited with code {server.process.returncode} during startup; "
                f"log tail:\n{server.log_tail()}"
            )
        try:
            data = _get_json(url, timeout=5)
            # The pinned model is loaded in the server's __init__, before uvicorn binds, so any
            # answer means ready; the id check guards against a foreign server on the same port.
            if any(entry.get("id") == server.model for entry in data.get("data", [])):
                return
            last_error = RuntimeError(f"/v1/models does not list {server.model!r}: {data}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_error = exc
        time.sleep(0.25)
    raise TimeoutError(
        f"transformers serve did not answer on {url} within {startup_timeout:.0f}s "
        f"(last error: {last_error!r}); log tail:\n{server.log_tail()}"
    )


@contextlib.contextmanager
def serve_model(
    model_path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout: float = 180,
    device: str = "cpu",
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[ServedModel]:
    """Run ``transformers serve`` on ``model_path`` for the duration of the ``with`` block.

    Starts the server on ``host``:``port`` (a free loopback port by default), waits until
    ``/v1/models`` lists the model, yields a :class:`ServedModel`, and stops the process on exit.
    The server runs offline (``HF_HUB_OFFLINE=1``) and logs to a temporary file whose tail is put
    in the exception if startup fails.

    Behaviour of ``transformers serve`` 5.x worth knowing when writing clients against it:

    * requests must name ``server.model`` (or no model at all); another name gets HTTP 400;
    * ``stop`` is broken for vision-language models (transformers 5.24): the processor is handed
      to ``generate`` as the tokenizer and the request fails with HTTP 500 (``get_vocab``), or an
      ``{"error": ...}`` event when streaming; truncate at the stop string client-side instead;
    * ``temperature`` > 0 only samples if the model's generation config has ``do_sample=True``
      (the tiny model's is greedy); without ``max_tokens`` it generates up to 1024 tokens;
    * for Qwen models the reply is parsed: ``<think>...</think>`` goes to
      ``message.reasoning_content`` and is removed from ``message.content``;
    * unknown request fields get HTTP 422; ``n``, ``logprobs`` and the like are ignored.

    Raises:
        RuntimeError: the server exited during startup.
        TimeoutError: it did not become ready within ``startup_timeout`` seconds.
    """
    port = free_port(host) if port is None else port
    model = str(model_path)
    child_env = dict(os.environ)
    child_env.setdefault("HF_HUB_OFFLINE", "1")
    child_env.setdefault("TRANSFORMERS_OFFLINE", "1")
    child_env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    child_env.setdefault("TOKENIZERS_PARALLELISM", "false")
    child_env["PYTHONUNBUFFERED"] = "1"
    if env:
        child_env.update(env)

    log_file: IO[bytes] = tempfile.NamedTemporaryFile(
        prefix=f"transformers-serve-{port}-{uuid.uuid4().hex[:8]}-", suffix=".log", delete=False
    )
    argv = serve_command(model, host=host, port=port, device=device, extra_args=extra_args)
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=child_env
    )
    server = ServedModel(
        base_url=f"http://{host}:{port}/v1",
        model=model,
        process=process,
        log_path=pathlib.Path(log_file.name),
    )
    try:
        _wait_until_ready(server, startup_timeout)
        yield server
    finally:
        server.stop()
        log_file.close()
        with contextlib.suppress(OSError):
            os.unlink(log_file.name)
