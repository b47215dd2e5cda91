"""``proguard-rails serve`` as a user runs it: a child process on 127.0.0.1 in front of the fake
OpenAI-compatible endpoint (another child process), driven over HTTP. Includes the load test:
2,000 requests, 64 in flight, every answer matched to its request (no timing asserts; the
latency figures are in the benchmark runner, benchmarks/bench_server.py)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from proguard_rails.server.loadtest import run_http_load, serve_process
from proguard_rails.testing_server import FakeChatServerProcess

pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint_process():
    with FakeChatServerProcess(model="ProGuard-7B") as fake:
        yield fake


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "proguard_rails", "--version"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert re.fullmatch(r"proguard-rails \d+\.\d+\.\d+\S*\n", out.stdout)


def test_refuses_a_public_address_without_keys(tmp_path):
    r = subprocess.run([sys.executable, "-m", "proguard_rails", "serve", "--host", "0.0.0.0", "--judge", "lite"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={k: v for k, v in os.environ.items() if not k.startswith("PROGUARD_")})
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 without API keys" in r.stderr


def test_bad_policy_file_fails_before_binding(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("categories:\n  C1: maybe\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "proguard_rails", "serve", "--config", str(cfg), "--judge", "lite"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "categories.C1" in r.stderr and str(cfg) in r.stderr


def test_load_2000_requests_64_in_flight_every_answer_matched(endpoint_process, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("load-key\n", encoding="utf-8")
    cfg = tmp_path / "policy.yaml"
    cfg.write_text("fail_mode: closed\nout_of_policy: block\n", encoding="utf-8")
    args = ["--judge", f"openai:{endpoint_process.base_url}", "--config", str(cfg), "--api-keys-file", str(keys),
            "--include-raw", "--max-concurrency", "64", "--log-level", "warning"]
    with serve_process(args, env={"PROGUARD_CACHE_SIZE": "0"}, cwd=str(ROOT)) as (url, proc, log):
        endpoint_process.reset_stats()
        result = asyncio.run(run_http_load(url, n=2_000, concurrency=64, api_key="load-key"))
        stats = endpoint_process.stats
        metrics = httpx.get(url + "/metrics", headers={"Authorization": "Bearer load-key"}).text
        assert proc.poll() is None  # still serving
    assert result["answered"] == 2_000 and result["http_200"] == 2_000, result
    assert result["matched"] == 2_000 and result["mismatched"] == 0 and result["errors"] == 0, result
    assert stats.chat_requests == 2_000  # no cache, no retries: one judge call per request
    total = sum(float(v) for v in re.findall(r'^proguard_checks_total\{[^}]*endpoint="moderations"[^}]*\} (\S+)$',
                                             metrics, re.M))
    assert total == 2_000
