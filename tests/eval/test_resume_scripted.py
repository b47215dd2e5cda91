"""The prediction cache: a rerun or a resumed run does not re-query what is cached
(backend calls counted); transport errors are retried; a torn cache line is ignored."""

from __future__ import annotations

import asyncio
import json

import pytest

from proguard_rails import ScriptedBackend
from proguard_rails.eval import Evaluator, load_dataset

from .helpers import dev_backend, dev_dataset_file, unsafe_answer, write_jsonl


@pytest.fixture
def dev(tmp_path):
    return load_dataset(dev_dataset_file(tmp_path / "data"), "generic", name="dev")


def _ev(backend, cache, **kw):
    return Evaluator({"s": backend}, cache_dir=cache, scorer=None, progress=False, **kw)


def test_scripted_rerun_reads_the_cache_and_retries_only_transport_errors(dev, tmp_path):
    cache = tmp_path / "cache"
    first = dev_backend()
    m1 = _ev(first, cache).run([dev]).metrics("s", "dev")
    assert first.calls == 14
    files = list(cache.glob("*.jsonl"))
    assert len(files) == 1
    assert sum(1 for _ in files[0].open()) == 12  # the 2 endpoint failures are not cached

    second = dev_backend()
    res = _ev(second, cache).run([dev])
    assert second.calls == 2  # only t6's two queries (endpoint errors) are asked again
    m2 = res.metrics("s", "dev")
    assert m2["cached"] == 12
    for key in ("binary", "categorization", "ood_detection"):
        assert m2[key] == m1[key]
    assert res.runs[0].judged == 2 and res.runs[0].cached == 12


def test_scripted_cache_is_per_judge_identity_and_policy(dev, tmp_path):
    cache = tmp_path / "cache"
    _ev(dev_backend(), cache).run([dev])

    class Other(ScriptedBackend):
        name = "other-scripted"

    other = Other(default=unsafe_answer("C1S1"))
    _ev(other, cache).run([dev])
    assert other.calls == 14  # a different judge identity never reads another judge's predictions
    assert len(list(cache.glob("*.jsonl"))) == 2


def test_scripted_interrupted_run_resumes_without_requerying(dev, tmp_path):
    cache = tmp_path / "cache"
    slow = dev_backend()
    slow.delay = 0.02

    async def interrupted() -> None:
        ev = _ev(slow, cache, batch_size=2, max_inflight=1)
        task = asyncio.ensure_future(ev.arun([dev]))
        while slow.calls < 6:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    (cache_file,) = cache.glob("*.jsonl")
    persisted = [json.loads(line) for line in cache_file.open()]
    assert 0 < len(persisted) < 12
    with cache_file.open("a") as fh:  # a run killed mid-write leaves a torn line
        fh.write('{"key": "abc", "judge": ')

    resumed = dev_backend()
    res = _ev(resumed, cache, batch_size=2, max_inflight=1).run([dev])
    assert resumed.calls == 14 - len(persisted)
    assert res.runs[0].cached == len(persisted)
    full = _ev(dev_backend(), None).run([dev]).metrics("s", "dev")
    assert res.metrics("s", "dev")["binary"] == full["binary"]


def test_scripted_parse_errors_are_cached(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "x", "request": "hello", "label": "safe"}])
    ds = load_dataset(path, name="d")
    bad = ScriptedBackend(default="no answer block here")
    m = _ev(bad, tmp_path / "c").run([ds]).metrics("s", "d")
    assert m["errors"] == {"parse": 1}
    again = ScriptedBackend(default="no answer block here")
    _ev(again, tmp_path / "c").run([ds])
    assert again.calls == 0


def test_scripted_text_only_judge_gets_image_samples_as_errors_without_calls(dev):
    from proguard_rails.judges.base import Judge

    class TextOnly(Judge):
        name = "text-only"
        supports_images = False

        def __init__(self) -> None:
            self.inner = dev_backend()

        async def ajudge_batch(self, requests, taxonomy):
            from proguard_rails.judges.generative import GenerativeJudge

            assert all(not r.images for r in requests)
            return await GenerativeJudge(self.inner).ajudge_batch(requests, taxonomy)

    judge = TextOnly()
    m = Evaluator({"t": judge}, scorer=None, progress=False).run([dev]).metrics("t", "dev")
    assert m["errors"]["unjudgeable"] == 2  # i1 main + i1 held out
    assert m["binary"]["request"]["image"]["errors"] == 1
    assert judge.inner.calls == 12
