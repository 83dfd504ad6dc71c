import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

from insurance_pipeline.cache.store import StepCache, step_cache_key

BASE = dict(code_version="c1", upstream_versions={"split": "v1"}, config={"seed": 42})


def key(**changes):
    return step_cache_key("step", **{**BASE, **changes}, libraries=["pandas"])


def test_key_changes_with_each_ingredient():
    k = key()
    assert key() == k
    assert key(code_version="c2") != k
    assert key(upstream_versions={"split": "v2"}) != k
    assert key(config={"seed": 43}) != k
    assert step_cache_key("other", **BASE, libraries=["pandas"]) != k
    assert step_cache_key("step", **BASE, libraries=["pandas", "numpy"]) != k
    # dict order does not matter
    assert key(config={"a": 1, "b": 2}) == key(config={"b": 2, "a": 1})


def test_miss_then_hit_returns_the_stored_value(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"answer": len(calls)}

    first = StepCache(tmp_path).get_or_compute("step", key(), compute)
    second = StepCache(tmp_path).get_or_compute("step", key(), compute)
    assert (first.hit, second.hit) == (False, True)
    assert second.value == {"answer": 1} and len(calls) == 1
    assert first.data_version == second.data_version


def test_a_failing_step_stores_nothing(tmp_path):
    cache = StepCache(tmp_path)

    def boom():
        raise RuntimeError("step crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("step", key(), boom)
    assert not cache.contains("step", key())
    assert cache.get_or_compute("step", key(), lambda: 7).value == 7


def test_a_killed_process_leaves_no_half_written_entry(tmp_path):
    # The child computes a 1 GiB value and is killed 0.2 s later, while joblib writes it.
    script = textwrap.dedent(
        f"""
        import os, signal, threading
        from insurance_pipeline.cache.store import StepCache

        def compute():
            threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
            return b"0" * (1 << 30)

        StepCache({str(tmp_path)!r}).get_or_compute("step", "k", compute)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert proc.returncode == -9
    cache = StepCache(tmp_path)
    assert not cache.contains("step", "k")
    assert cache.get_or_compute("step", "k", lambda: b"ok").value == b"ok"


def _store_many(root, worker):
    cache = StepCache(root)
    for i in range(20):
        cache.get_or_compute("step", f"k{i}", lambda i=i: {"i": i, "blob": b"x" * 200_000})


def test_concurrent_writers_do_not_corrupt_the_store(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_store_many, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = StepCache(tmp_path)
    for i in range(20):
        result = cache.get_or_compute("step", f"k{i}", lambda: pytest.fail("should be cached"))
        assert result.hit and result.value["i"] == i


def test_prune_everything_and_by_size(tmp_path):
    cache = StepCache(tmp_path)
    for i in range(5):
        cache.get_or_compute("step", f"k{i}", lambda: os.urandom(100_000))
    cache.prune(bytes_limit=250_000)
    kept = [i for i in range(5) if cache.contains("step", f"k{i}")]
    assert 1 <= len(kept) <= 2
    cache.prune()
    assert not any(cache.contains("step", f"k{i}") for i in range(5))


def test_a_tampered_entry_is_refused_before_unpickling(tmp_path):
    from insurance_pipeline.cache.store import VALUE_FILE, CacheIntegrityError

    cache = StepCache(tmp_path)
    cache.get_or_compute("step", "k", lambda: {"model": "good"})
    value_file = tmp_path / "step" / "k" / VALUE_FILE
    import joblib

    joblib.dump({"model": "swapped"}, value_file)  # a valid pickle, not the one written
    with pytest.raises(CacheIntegrityError, match=str(value_file)):
        cache.load("step", "k")
    with pytest.raises(CacheIntegrityError):
        cache.get_or_compute("step", "k", lambda: pytest.fail("must not recompute silently"))


def test_a_missing_entry_says_which_step_to_materialize(tmp_path):
    from insurance_pipeline.cache.store import CacheEntryMissing

    with pytest.raises(CacheEntryMissing, match="materialize trained_model again"):
        StepCache(tmp_path).load("trained_model", "nope")
