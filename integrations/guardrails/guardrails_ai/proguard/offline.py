"""Check that Guardrails itself stays offline next to the validator.

The validator only talks to the model ``proguard_rails`` is pointed at. Guardrails has its own
outbound paths: anonymous metrics (on unless ``~/.guardrailsrc`` says ``enable_metrics=false``),
hosted "remote inferencing" for hub validators, an ``nltk.download("punkt")`` at import when
nltk is installed without punkt, and LiteLLM's model price list when it calls an LLM.
"""

from __future__ import annotations

import os


def offline_problems() -> list[str]:
    """Human-readable reasons this process could reach the network through Guardrails; [] when none."""
    from guardrails.classes.rc import RC

    problems: list[str] = []
    rc = RC.load()
    rc_path = os.path.join(os.path.expanduser("~"), ".guardrailsrc")
    if rc.enable_metrics is not False:
        problems.append(
            f"Guardrails anonymous metrics are on ({rc_path} missing or enable_metrics not false): "
            "write 'enable_metrics=false' there, or call Guard().configure(allow_metrics_collection=False)"
        )
    if rc.use_remote_inferencing:
        problems.append(
            f"use_remote_inferencing=true in {rc_path}: hub validators would send content to Guardrails' "
            "hosted inference (ProGuardValidator never does); set use_remote_inferencing=false"
        )
    if os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() != "true":
        problems.append(
            "LITELLM_LOCAL_MODEL_COST_MAP is not 'True': LiteLLM fetches its model price list when Guardrails "
            "calls an LLM through it"
        )
    try:
        import nltk

        try:
            nltk.data.find("tokenizers/punkt")
        except LookupError:
            problems.append(
                "nltk is installed without 'punkt': `import guardrails` tries nltk.download('punkt'); provision it "
                "(python -m nltk.downloader -d DIR punkt on a connected machine, then NLTK_DATA=DIR)"
            )
    except ImportError:
        pass
    return problems


__all__ = ["offline_problems"]
