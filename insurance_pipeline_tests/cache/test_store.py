"""The step cache: content keys, atomic entries, and entries read only when the pipeline's
key signed them (a forged, planted or foreign entry is refused, never unpickled, and
recomputed with a warning naming it)."""

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from insurance_pipeline.cache import store as store_module
from insurance_pipeline.cache.store import META_FILE, step_cache_key
from insurance_pipeline.core.trust.keys import Signer, Verifier, generate_key
from insurance_pipeline_tests.helpers import SESSION_KEY

pytestmark = pytest.mark.pure


def StepCache(root, **kwargs):  # noqa: N802 - the store, with the session's key
    signer = Signer(Path(SESSION_KEY))
    return store_module.StepCache(root, signer=signer, verifier=Verifier.of(signer), **kwargs)


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
        from pathlib import Path
        from insurance_pipeline.cache.store import StepCache
        from insurance_pipeline.core.trust.keys import Signer, Verifier

        def compute():
            threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
            return b"0" * (1 << 30)

        signer = Signer(Path({str(SESSION_KEY)!r}))
        StepCache({str(tmp_path)!r}, signer=signer, verifier=Verifier.of(signer)).get_or_compute(
            "step", "k", compute
        )
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


def value_file(entry: Path) -> Path:
    return entry / json.loads((entry / META_FILE).read_text())["payload"]["value"]


def _forge(entry: Path, data: bytes, **changes) -> None:
    """Replace an entry's value and rewrite its metadata to match (sha re-pinned), keeping
    the old signature: what an attacker with write access to the cache can do."""
    import hashlib

    value_file(entry).write_bytes(data)
    envelope = json.loads((entry / META_FILE).read_text())
    envelope["payload"].update(sha256=hashlib.sha256(data).hexdigest(), **changes)
    (entry / META_FILE).write_text(json.dumps(envelope))


def test_a_tampered_entry_is_refused_named_and_recomputed(tmp_path):
    from insurance_pipeline.cache.store import CacheIntegrityError

    cache = StepCache(tmp_path)
    cache.get_or_compute("step", "k", lambda: {"metric": 0.84})
    entry = tmp_path / "step" / "k"
    value_file(entry).write_bytes(b'{"__dict__": {"metric": 0.995}}')  # sha not re-pinned
    with pytest.raises(CacheIntegrityError, match="has sha256 .* signed metadata says"):
        cache.load("step", "k")
    _forge(entry, b'{"__dict__": {"metric": 0.995}}')  # sha re-pinned: the signature breaks
    with pytest.raises(CacheIntegrityError, match="signature does not verify"):
        cache.load("step", "k")
    warnings = []
    cache.warn = warnings.append
    again = cache.get_or_compute("step", "k", lambda: {"metric": 0.84})
    assert not again.hit and again.value == {"metric": 0.84}
    assert len(warnings) == 1 and str(entry) in warnings[0] and "recomputing step" in warnings[0]
    assert cache.load("step", "k").value == {"metric": 0.84}  # replaced by a good entry


def test_a_planted_pickle_never_runs(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    cache = StepCache(tmp_path / "cache")
    from sklearn.linear_model import LinearRegression

    fitted = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    cache.get_or_compute("trained_model", "k", lambda: fitted)  # a pickle-format entry
    entry = tmp_path / "cache" / "trained_model" / "k"
    _forge(entry, pickle.dumps(Exploit()))
    again = cache.get_or_compute("trained_model", "k", lambda: "recomputed")
    assert again.value == "recomputed" and not again.hit
    assert not marker.exists()


def test_an_entry_signed_by_another_key_is_refused(tmp_path):
    from insurance_pipeline.cache.store import CacheIntegrityError

    other = Signer(generate_key(tmp_path / "keys" / "other.pem"))
    foreign = store_module.StepCache(tmp_path / "c", signer=other, verifier=Verifier.of(other))
    foreign.get_or_compute("step", "k", lambda: {"from": "elsewhere"})
    with pytest.raises(CacheIntegrityError, match="trusted key"):
        StepCache(tmp_path / "c").load("step", "k")
    # trusting both keys (a rotation) accepts it
    ours = Signer(Path(SESSION_KEY))
    both = Verifier((Path(SESSION_KEY), other.path))
    rotated = store_module.StepCache(tmp_path / "c", signer=ours, verifier=both)
    assert rotated.load("step", "k").value == {"from": "elsewhere"}


def test_data_is_stored_as_data_and_only_estimators_as_pickles(tmp_path, insurance_frame):
    from sklearn.linear_model import Ridge

    from insurance_pipeline.core.data.split import split_rows

    cache = StepCache(tmp_path)
    split = split_rows(insurance_frame, seed=42, test_fraction=0.2)
    values = {"frame": insurance_frame, "split": split, "model": Ridge()}
    for name, value in values.items():
        cache.get_or_compute(name, "k", lambda value=value: value)
    formats = {
        name: json.loads((tmp_path / name / "k" / META_FILE).read_text())["payload"]["format"]
        for name in values
    }
    assert formats == {"frame": "parquet", "split": "json", "model": "pickle"}
    loaded = cache.load("split", "k").value
    assert loaded.train.equals(split.train) and loaded.test.equals(split.test)
    assert (loaded.seed, loaded.duplicates_dropped) == (42, 1)
    assert cache.load("frame", "k").value.equals(insurance_frame)


def test_a_read_only_cache_still_serves_hits(tmp_path):
    cache = StepCache(tmp_path)
    cache.get_or_compute("step", "k", lambda: {"v": 1})
    os.chmod(tmp_path / "step" / "k" / META_FILE, 0o444)
    os.chmod(tmp_path / "step" / "k", 0o555)
    try:
        if os.access(tmp_path / "step" / "k" / META_FILE, os.W_OK):
            pytest.skip("running as root: permissions do not bind")
        assert cache.get_or_compute("step", "k", lambda: pytest.fail("recomputed")).hit
    finally:
        os.chmod(tmp_path / "step" / "k", 0o755)


def test_a_missing_entry_says_which_step_to_materialize(tmp_path):
    from insurance_pipeline.cache.store import CacheEntryMissing

    with pytest.raises(CacheEntryMissing, match="materialize trained_model again"):
        StepCache(tmp_path).load("trained_model", "nope")


def run_with_deadline(work, seconds: float = 10.0):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result(timeout=seconds)


def test_a_meta_file_replaced_by_a_fifo_is_a_miss_not_a_hang(tmp_path):
    cache = StepCache(tmp_path)
    cache.get_or_compute("step", key(), lambda: {"old": True})
    meta = tmp_path / "step" / key() / META_FILE
    meta.unlink()
    os.mkfifo(meta)  # a reader that opened it for reading would wait forever
    warnings, calls = [], []
    cache.warn = warnings.append
    result = run_with_deadline(
        lambda: cache.get_or_compute("step", key(), lambda: calls.append(1) or {"fresh": True})
    )
    assert result.value == {"fresh": True} and not result.hit and calls == [1]
    assert any("is not a regular file" in w for w in warnings), warnings
    assert StepCache(tmp_path).load("step", key()).value == {"fresh": True}  # replaced


def test_a_value_over_the_bound_is_a_miss_with_a_warning(tmp_path):
    StepCache(tmp_path).get_or_compute("step", key(), lambda: {"big": "x" * 10_000})
    cache = StepCache(tmp_path, max_entry_bytes=1_000)
    warnings = []
    cache.warn = warnings.append
    result = cache.get_or_compute("step", key(), lambda: {"small": 1})
    assert not result.hit and result.value == {"small": 1}
    assert any("larger than the 1,000 bytes allowed" in w for w in warnings), warnings


def test_a_value_file_that_is_a_device_is_refused(tmp_path):
    cache = StepCache(tmp_path)
    cache.get_or_compute("step", key(), lambda: {"v": 1})
    entry = tmp_path / "step" / key()
    name = json.loads((entry / META_FILE).read_text())["payload"]["value"]
    (entry / name).unlink()
    (entry / name).symlink_to("/dev/zero")  # endless bytes
    warnings = []
    cache.warn = warnings.append
    result = run_with_deadline(lambda: cache.get_or_compute("step", key(), lambda: {"v": 2}))
    assert result.value == {"v": 2} and any("not a regular file" in w for w in warnings)
