"""One local Ray cluster (2 CPUs, no dashboard, usage stats off) for the whole module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import CRASH_MARKER_ENV

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # telemetry off (also for the workers: inherited)
    marker = tmp_path_factory.mktemp("ray_crash") / "crashed"
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        CRASH_MARKER_ENV: str(marker),
    }
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": env})
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        yield {"address": ray.get_runtime_context().gcs_address, "crash_marker": marker}
    finally:
        ray.shutdown()
