"""Issue 28: health.record buckets a latency by one bisect over precomputed bounds instead of
log/ceil/min; the buckets (and so every stored histogram) are the same."""

from __future__ import annotations

import math

import numpy as np

from mlops_kit.clock import FixedClock
from mlops_kit.core.serving.health import ServingHealth, bucket, bucket_upper_ms


def _log_bucket(latency_ms: float) -> int:  # the formula bucket() had
    if latency_ms <= 0.05:
        return 0
    return min(159, int(math.ceil(math.log(latency_ms / 0.05, 1.122))))


def test_bisect_buckets_equal_the_log_formula():
    rng = np.random.default_rng(28)
    latencies = [0.0, 0.05, 0.0500001, 1.0, 7.0, 1e9, *rng.lognormal(0.0, 3.0, 20_000).tolist()]
    assert [bucket(x) for x in latencies] == [_log_bucket(x) for x in latencies]
    assert all(bucket_upper_ms(bucket(x)) >= x for x in latencies if bucket(x) < 159)


def test_record_counts_per_version_key_and_status_class():
    health = ServingHealth(store=None, clock=FixedClock())  # type: ignore[arg-type]
    for version, status in [(1, 200), (1, 404), (None, 400), (2000, 503), (1, 201)]:
        health.record("churn", version, status, 3.0)
    counts = health.snapshot()["churn"]
    assert (counts["1"]["2xx"], counts["1"]["4xx"]) == (2, 1)
    assert counts["unrouted"]["4xx"] == 1 and counts["2000"]["5xx"] == 1
    assert counts["1"]["latency"] == {str(bucket(3.0)): 3}
    assert health.first_at is not None


def test_a_failed_health_write_keeps_its_counts_for_the_next_flush(tmp_path):
    """A store fault (a TransientError) lost the flush's counts; they are now put back and
    written, added to what was counted meanwhile, by the next flush."""
    from mlops_kit.adapters.local.store import FileObjectStore
    from mlops_kit.errors import TransientError

    class Flaky(FileObjectStore):
        fail = True

        def put(self, key, data, *, content_type=None):
            if self.fail:
                raise TransientError("put: connection failed")
            return super().put(key, data, content_type=content_type)

    store = Flaky(tmp_path)
    health = ServingHealth(store=store, clock=FixedClock())
    for model in ("churn", "fraud"):
        health.record(model, 1, 200, 3.0)
    try:
        health.flush()
    except TransientError:
        pass
    else:
        raise AssertionError("the failed write must raise")
    assert health.pending() and health.first_at is not None
    health.record("churn", 1, 500, 3.0)
    store.fail = False
    assert health.flush() == 2 and not health.pending()
    import json
    written = {json.loads(store.get(o.key))["model"]: json.loads(store.get(o.key))["versions"]
               for o in store.list("captures/_health/")}
    assert written["churn"]["1"]["2xx"] == 1 and written["churn"]["1"]["5xx"] == 1
    assert written["fraud"]["1"]["2xx"] == 1
