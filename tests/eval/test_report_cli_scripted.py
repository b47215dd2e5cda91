"""Reports (JSON with counts, markdown comparing judges, PNG figures, paper figures from a
reference file) and the ``eval`` command line, with scripted judges."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from proguard_rails import ScriptedBackend
from proguard_rails.eval import Evaluator, load_dataset, write_report
from proguard_rails.eval.cli import parse_dataset_spec, parse_judge_spec
from proguard_rails.eval.report import default_reference_path, load_reference

from .helpers import CLI_BACKENDS, dev_backend, dev_dataset_file, unsafe_answer, write_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_scripted_report_json_markdown_figures_and_reference(tmp_path):
    dev = load_dataset(dev_dataset_file(tmp_path / "data"), name="dev")
    xs = load_dataset(write_csv(tmp_path / "data" / "xs.csv", [
        {"prompt": "kill a process", "type": "homonyms", "label": "safe"},
        {"prompt": "WEAPON-ONE now", "type": "contrast_homonyms", "label": "unsafe"},
    ]), "xstest", name="xstest")
    always = ScriptedBackend(default=unsafe_answer("C9S3"))
    always.name = "always-unsafe"  # its own identity: predictions are kept apart by judge identity
    judges = {"scripted": dev_backend(), "always-unsafe": always}
    results = Evaluator(judges, scorer=None, progress=False).run([dev, xs])
    reference = {"results": {"PaperGuard": {"xstest": {"binary.request.all.f1": 91.5}}},
                 "claims": [{"text": "a claim", "source": "README"}]}
    paths = write_report(results, tmp_path / "out", reference=reference, command="python -m training.eval ...")

    data = json.loads(paths["json"].read_text())
    req = data["results"]["scripted"]["dev"]["binary"]["request"]["all"]
    assert (req["tp"], req["fp"], req["fn"], req["tn"]) == (4, 1, 1, 2)  # counts beside every metric
    assert data["results"]["always-unsafe"]["xstest"]["binary"]["request"]["all"]["fp"] == 1
    # always C9S3: of the six unsafe categorized dev samples only t6 (C9S1) has the right main category
    assert data["results"]["always-unsafe"]["dev"]["categorization"]["main"]["correct"] == 1
    assert data["datasets"]["xstest"]["n"] == 2 and data["meta"]["command"].startswith("python -m")
    assert data["reference"]["results"]["PaperGuard"]["xstest"]["binary.request.all.f1"] == 91.5

    md = paths["markdown"].read_text()
    assert "| dataset | metric | scripted | always-unsafe | PaperGuard (paper) |" in md
    assert "| xstest | Request F1 | 66.7 (n=2) | 66.7 (n=2) | 91.5 |" in md
    assert "| dev | Request F1 | 80.0 (n=8) |" in md
    assert "python -m training.eval ..." in md and "a claim" in md
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert "summary.png" in figures and "per_category__dev.png" in figures
    assert "confusion__scripted__dev.png" in figures
    for name in figures:
        assert (tmp_path / "out" / "figures" / name).read_bytes().startswith(PNG_MAGIC)
        assert f"figures/{name}" in md
    preds = (tmp_path / "out" / "predictions" / "scripted__dev.jsonl").read_text().splitlines()
    assert len(preds) == 14 and json.loads(preds[0])["gold"]["id"] == "t1"


def test_shipped_reference_file_parses_and_holds_only_documented_entries():
    ref = load_reference(default_reference_path())
    assert isinstance(ref.get("results"), dict)
    for model, per_ds in ref["results"].items():
        for ds, values in per_ds.items():
            assert all(0 <= float(v) <= 100 for v in values.values()), (model, ds)
    raw = yaml.safe_load(default_reference_path().read_text())
    assert "source" in raw


def test_spec_parsing():
    assert parse_dataset_spec("dev=generic:data/dev.jsonl") == ("dev", "generic", "data/dev.jsonl")
    assert parse_dataset_spec("xstest:/x/xs.csv") == (None, "xstest", "/x/xs.csv")
    assert parse_dataset_spec("/x/a=b.jsonl") == (None, "generic", "/x/a=b.jsonl")
    assert parse_judge_spec("pg=http://h:8000/v1") == ("pg", "http://h:8000/v1")
    assert parse_judge_spec("http://h:8000/v1") == ("endpoint", "http://h:8000/v1")
    assert parse_judge_spec("lite") == ("lite", "lite")


def test_scripted_eval_cli_resumes_from_cache(tmp_path, capsys):
    from proguard_rails.eval.cli import main

    data = dev_dataset_file(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["--dataset", f"dev=generic:{data}", "--judge", "s=py:tests.eval.helpers:cli_backend",
            "--out", str(out), "--no-progress", "--no-similarity", "--no-figures"]
    CLI_BACKENDS.clear()
    assert main(argv) == 0
    assert CLI_BACKENDS[-1].calls == 14
    assert "s on dev: Request F1 80.0" in capsys.readouterr().out
    assert main(argv) == 0
    assert CLI_BACKENDS[-1].calls == 2  # only the uncached endpoint failures
    data_json = json.loads((out / "results.json").read_text())
    assert data_json["results"]["s"]["dev"]["run"] == {"judged_now": 2, "from_cache": 12,
                                                       "seconds": data_json["results"]["s"]["dev"]["run"]["seconds"]}
    assert main(["--dataset", str(tmp_path / "missing.jsonl"), "--judge", "lite", "--out", str(out)]) == 2


@pytest.mark.parametrize("module", ["proguard_rails.eval", "training.eval"])
def test_eval_entry_points_are_wired(module):
    # the harness ships in the core; the checkout keeps ``python -m training.eval`` as an alias
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--dataset" in proc.stdout and "openai_moderation" in proc.stdout


def test_importing_the_harness_stays_light():
    code = ("import sys, proguard_rails.eval, proguard_rails.eval.cli, proguard_rails.scan; "
            "heavy = [m for m in ('torch', 'transformers', 'matplotlib', 'pandas', 'pyarrow') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_proguard_rails_cli_delegates_eval_and_scan(capsys):


    from proguard_rails.cli import main

    for cmd, flag in (("eval", "--dataset"), ("scan", "--out")):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert flag in capsys.readouterr().out


def test_two_different_judges_with_one_identity_are_refused():


    from proguard_rails.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="same identity"):
        Evaluator({"a": ScriptedBackend(), "b": ScriptedBackend()}, scorer=None)
    same = ScriptedBackend()
    Evaluator({"a": same, "b": same}, scorer=None)  # one judge under two names is fine
