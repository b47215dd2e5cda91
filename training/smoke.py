"""Steering for CPU smoke runs: the tiny random model's sampling biased toward well-formed answers.

A random-weight model never writes ``<think>…</think><answer>…</answer>``, so every reward is
0, every GRPO advantage is 0, and a smoke run would show a zero loss and a zero gradient: it
would prove the plumbing but nothing about learning. ``smoke_answer_bias`` (config top level,
CPU smoke runs only) adds a large logit bias (transformers' ``sequence_bias`` generation
option) along the answer grammar below, anchored at the start of the assistant turn: every
sampled completion is one of a few dozen well-formed answers, while the choice between them
(labels, category, text or image layout) is left to the model's own random logits. Rewards then
differ inside a group, advantages are non-zero, and the update has a real signal.

The bias changes what is sampled, not the log-probabilities GRPO computes (a separate forward
pass without it), so the loss is the ordinary GRPO loss on those samples. Real runs never set
it; it requires transformers generation (not vLLM).
"""

from __future__ import annotations

import itertools
from typing import Any

from proguard_rails.protocol import format_answer
from proguard_rails.taxonomy import Taxonomy

#: The assistant turn's opening in the Qwen2-VL chat template (the generation prompt).
ASSISTANT_ANCHOR = "<|im_start|>assistant\n"
END_OF_TURN = "<|im_end|>"


def answer_grammar(taxonomy: Taxonomy, *, reasoning: str = "ok") -> list[str]:
    """The well-formed answers a smoke run may sample, for every modality's layout.

    Categories: the first subcategory and the id of each main category, and one free-text
    name (a synonym from the bank, which scores as an out-of-policy description).
    """
    ids: list[str] = []
    for cat in taxonomy.categories:
        if cat.subcategories:
            ids.append(cat.subcategories[0].id)
        ids.append(cat.id)
    first = next((s for c in taxonomy.categories for s in c.subcategories if s.synonyms), None)
    names = [first.synonyms[0]] if first is not None else []
    categories = ids + names
    answers = [format_answer("text", "safe", "safe", None, reasoning=reasoning),
               format_answer("image", "safe", None, None, reasoning=reasoning)]
    for request, response in itertools.product(("safe", "unsafe"), repeat=2):
        if "unsafe" in (request, response):
            answers += [format_answer("text", request, response, c, reasoning=reasoning) for c in categories]
    answers += [format_answer("image", "unsafe", None, c, reasoning=reasoning) for c in categories]
    return answers


def answer_sequence_bias(tokenizer: Any, taxonomy: Taxonomy, bias: float) -> list[list[Any]]:
    """``sequence_bias`` entries ``[[token ids...], bias]`` for :func:`answer_grammar`.

    Each entry biases one next token after an exact prefix that starts at the assistant turn,
    so only grammar paths are favoured; where answers branch, all branches get the same bias.
    """
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    anchor = tok(ASSISTANT_ANCHOR, add_special_tokens=False)["input_ids"]
    end = tok.convert_tokens_to_ids(END_OF_TURN)
    if not anchor or end is None or end == tok.unk_token_id:
        raise ValueError("smoke_answer_bias needs a Qwen2-VL style chat template (<|im_start|>assistant, <|im_end|>)")
    keys: dict[tuple[int, ...], None] = {}
    for answer in answer_grammar(taxonomy):
        ids = list(tok(answer, add_special_tokens=False)["input_ids"]) + [end]
        for i in range(len(ids)):
            keys[tuple(anchor + ids[: i + 1])] = None
    return [[list(k), float(bias)] for k in keys]


__all__ = ["ASSISTANT_ANCHOR", "answer_grammar", "answer_sequence_bias"]
