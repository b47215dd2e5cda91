"""The verl route, checked with verl's own machinery (verl 0.9 in its own environment).

* the launcher's overrides, composed into verl's real Hydra config (``ppo_trainer.yaml``) and
  validated as ``main_ppo`` validates them, load the project's ``compute_score`` through verl's
  custom-reward loader, with a reward manager verl registers, which scores like the project;
* verl's ``RLHFDataset`` reads the export, literal placeholders in sample text included;
* the multi-node commands in docs/training.md compose to the cluster they describe.

verl is installed once into a cached virtual environment (``verl_env.py``); these tests skip
only when it cannot be installed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from proguard_rails.protocol import format_answer
from proguard_rails.taxonomy import Taxonomy
from tests.training.verl_env import LAUNCHER, REPO, launcher_command, run_probe, verl_python
from training.data.schema import GuardSample
from training.rewards import RewardScorer

DOCS = REPO / "docs" / "training.md"
REWARD_FILE = os.path.realpath(REPO / "training" / "verl" / "reward.py")


@pytest.fixture(scope="module")
def verl_env() -> Path:
    python, why = verl_python()
    if python is None:
        pytest.skip(f"verl cannot be installed here: {why}")
    return python


def _gt(**target: Any) -> str:
    return json.dumps(target)


# Completions scored through verl's reward manager and, in this process, by the project's scorer.
_CASES: list[dict[str, Any]] = [
    {"modality": "text", "target": {"modality": "text", "request_label": "unsafe", "response_label": "safe",
                                    "category": "C3S1"},
     "answer": ("text", "unsafe", "safe", "C3S1")},
    {"modality": "text", "target": {"modality": "text", "request_label": "unsafe", "response_label": "safe",
                                    "category": "C3S1"},
     "answer": ("text", "safe", "safe", None)},
    {"modality": "image", "target": {"modality": "image", "request_label": "unsafe", "category": "C8S1"},
     "answer": ("image", "unsafe", None, "C8S2")},
    {"modality": "text", "target": {"modality": "text", "request_label": "unsafe", "response_label": "safe",
                                    "held_out": ["C3"], "target_name": "Fraud and Scams",
                                    "synonyms": ["Scam and Fraudulent Activities"]},
     "answer": ("text", "unsafe", "safe", "C3S1")},  # force-fitting an id: no embedder needed
]


def _export_with_placeholders(tmp: Path) -> tuple[Path, list[GuardSample]]:
    from training.data.export import write_verl_parquet
    from training.data.synthetic import smoke_samples

    tax = Taxonomy.from_yaml(REPO / "training" / "configs" / "smoke_taxonomy.yaml")
    smoke = smoke_samples(tax)
    image = next(s for s in smoke if s.images and not s.request).images[0]
    samples = [
        GuardSample(request="What do the <image>, <video> and <audio> tags do in HTML?", request_label="safe"),
        GuardSample(request="Play this <audio> clip", response="Sure <video>", request_label="safe",
                    response_label="safe"),
        GuardSample(request="Is this <audio> or an <image>?", images=[image], request_label="safe"),
        GuardSample(images=[image], request_label="unsafe", category="C8S1"),
        *[s for s in smoke if s.images][:2],
    ]
    return write_verl_parquet(samples, tmp / "train.parquet", tax, templates="compact"), samples


def _doc_block(marker: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {re.escape(marker)} -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert m, f"docs/training.md has no bash block after <!-- {marker} -->"
    return m.group(1)


def _commands(block: str) -> list[list[str]]:
    joined = re.sub(r"\\\n", " ", block)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def _launch(command: list[str]) -> tuple[dict[str, str], list[str]]:
    i = command.index("bash")
    assert command[i + 1] == "training/verl/run_grpo.sh" and (REPO / command[i + 1]) == LAUNCHER
    env = dict(tok.split("=", 1) for tok in command[:i])
    return env, command[i + 2:]


@pytest.fixture(scope="module")
def probed(verl_env: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One verl process (importing verl dominates) for the launcher and the docs' commands."""
    from proguard_rails.testing import tiny_model_path

    tmp = tmp_path_factory.mktemp("verl")
    parquet, samples = _export_with_placeholders(tmp)
    command = launcher_command({"MODEL_PATH": "/models/ProGuard-7B", "TRAIN": str(parquet)})
    rewards = [{"data_source": "proguard", "ground_truth": _gt(**c["target"]),
                "solution_str": format_answer(*c["answer"], reasoning="checked"), "extra_info": {}}
               for c in _CASES]
    multi_cmds = _commands(_doc_block("verl-multinode"))
    multi_env, multi_overrides = _launch(next(c for c in multi_cmds if "training/verl/run_grpo.sh" in c))
    single_env, single_overrides = _launch(
        next(c for c in _commands(_doc_block("verl-single-node")) if "training/verl/run_grpo.sh" in c))
    jobs = [{"command": command, "rewards": rewards, "parquet": str(parquet)},
            {"command": launcher_command(multi_env, *multi_overrides)},
            {"command": launcher_command(single_env, *single_overrides)}]
    launcher, multi, single = run_probe(verl_env, jobs, tokenizer=str(tiny_model_path()))
    return {"result": launcher, "command": command, "samples": samples, "rewards": rewards,
            "multi": multi, "multi_cmds": multi_cmds, "multi_env": multi_env, "single": single,
            "single_env": single_env}


def test_launcher_passes_only_verl_09_reward_keys(probed: dict[str, Any]) -> None:
    result = probed["result"]
    assert probed["command"][1:3] == ["-m", "verl.trainer.main_ppo"]
    # nothing relies on the legacy keys, which verl 0.9's main_ppo never migrates
    assert result["legacy"] == {"custom_reward_function": {"path": None, "name": None},
                                "reward_model.reward_manager": None}
    assert result["reward_after_migration"] == result["reward"]
    assert result["reward"]["custom_reward_function"]["path"] == REWARD_FILE


def test_verl_loads_the_projects_reward_function(probed: dict[str, Any]) -> None:
    fn = probed["result"]["reward_fn"]
    assert fn is not None, "verl found no custom reward function: it would fall back to its default scorer"
    assert fn["file"] == REWARD_FILE and fn["name"] == "compute_score"
    assert fn["kwargs"] == {"embedding_model": "minilm"}


def test_reward_manager_is_registered_and_scores_like_the_project(probed: dict[str, Any]) -> None:
    result = probed["result"]
    name = result["reward"]["reward_manager"]["name"]
    assert result["reward"]["reward_manager"]["source"] == "register"
    assert name in result["manager"]["registered"] and result["manager"]["registered_as"] == [name]
    ours = RewardScorer(Taxonomy.default()).score_batch(
        [r["solution_str"] for r in probed["rewards"]], [r["ground_truth"] for r in probed["rewards"]])
    got = result["scores"]
    assert isinstance(got, list), f"verl's reward manager failed: {got}"
    assert [s["reward_score"] for s in got] == [o.total for o in ours]
    assert [s["reward_extra_info"]["category"] for s in got] == [o.category or 0.0 for o in ours]
    assert len({s["reward_score"] for s in got}) > 2  # the cases really differ


def test_verl_dataset_reads_the_export_with_literal_placeholders(probed: dict[str, Any]) -> None:
    ds = probed["result"]["dataset"]
    samples: list[GuardSample] = probed["samples"]
    assert ds["rows"] == len(samples)  # verl's length filter drops rows it cannot build: none here
    for item in ds["items"]:
        sample = samples[item["index"]]
        system, user = item["messages"]
        assert system["types"] == ["text"]
        assert user["types"].count("image") == len(sample.images)
        assert "audio" not in user["types"] and "video" not in user["types"]
        for tag in ("image", "video", "audio"):
            assert f"<{tag}>" not in user["text"]
            assert user["text"].count(f"‹{tag}›") == (sample.request + (sample.response or "")).count(f"<{tag}>")


# ---------------------------------------------------------------------------- docs: the cluster commands
def test_docs_multinode_commands_compose_to_the_described_cluster(probed: dict[str, Any]) -> None:
    cmds, env = probed["multi_cmds"], probed["multi_env"]
    head = [c for c in cmds if c[:3] == ["ray", "start", "--head"]]
    workers = [c for c in cmds if c[:2] == ["ray", "start"] and any(a.startswith("--address=") for a in c)]
    launches = [c for c in cmds if "training/verl/run_grpo.sh" in c]
    assert len(head) == 1 and workers and len(launches) == 1

    def opt(cmd: list[str], name: str) -> str:
        return next(a.split("=", 1)[1] for a in cmd if a.startswith(f"--{name}="))

    port = opt(head[0], "port")
    gpus = int(opt(head[0], "num-gpus"))
    for w in workers:
        assert opt(w, "address").endswith(f":{port}") and int(opt(w, "num-gpus")) == gpus
    nnodes = int(env["NNODES"])
    assert nnodes >= 2 and int(env["GPUS_PER_NODE"]) == gpus

    multi, one = probed["multi"], probed["single"]
    # the cluster verl will ask Ray for (validate_config passed for nnodes x n_gpus_per_node)
    assert multi["trainer"]["nnodes"] == nnodes and multi["trainer"]["n_gpus_per_node"] == gpus
    assert one["trainer"]["nnodes"] == 1
    assert one["trainer"]["n_gpus_per_node"] == int(probed["single_env"]["GPUS_PER_NODE"])
    # what every node reads lives on the shared filesystem: checkpoint, data, embedder, model
    shared = env["OUT"].split("/")[1]
    assert multi["trainer"]["default_local_dir"] == env["OUT"]
    assert multi["model_path"] == env["MODEL_PATH"]
    assert multi["data"]["train_files"] == env["TRAIN"]
    assert multi["reward_fn"]["kwargs"]["embedding_model"] == env["EMBEDDING_MODEL"]
    for path in (env["OUT"], env["MODEL_PATH"], env["TRAIN"], env["VAL"], env["EMBEDDING_MODEL"]):
        assert path.startswith(f"/{shared}/"), f"{path} is not on the shared filesystem /{shared}"
    for result in (multi, one):
        assert result["reward_fn"]["file"] == REWARD_FILE
        assert result["legacy"]["reward_model.reward_manager"] is None
