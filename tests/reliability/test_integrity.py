"""Integrity beyond truncation (tests/unit/serving/test_routes.py covers a truncated artifact
with a previous champion loaded): a same-length bit flip, and a valid ONNX model swapped in
under another version's key, are refused on a cold start too -- nothing is served, an alert
is raised."""

from __future__ import annotations

import pytest

from mlops_kit.errors import IntegrityError, NotFound
from tests.support import feature_records


def _swap_in_other_model(backend, artifact: str) -> bytes:
    from mlops_kit.core.synthetic import churn_csv
    from mlops_kit.local.worker import put_object, run_once

    put_object(backend, "datasets/churn/other.csv", churn_csv(700, seed=99))
    assert run_once(backend)[-1]["status"] == "registered"
    return backend.ctx.store.get(f"models/churn/000002/{artifact}")


@pytest.mark.parametrize("artifact", ["model.ort", "model.onnx"])
@pytest.mark.parametrize("tamper", ["bit flip", "another valid model"])
def test_tampered_champion_is_refused_on_a_cold_start_and_alerts(trained, tamper, artifact):
    """model.ort is what serving loads when the version has one; model.onnx when it has not
    (here: deleted, as for a version exported before model.ort existed)."""
    store, reg = trained.ctx.store, trained.ctx.registry
    KEY = f"models/churn/000001/{artifact}"
    if artifact == "model.onnx":
        store.delete("models/churn/000001/model.ort")
    original = store.get(KEY)
    if tamper == "bit flip":
        i = len(original) // 2
        bad = original[:i] + bytes([original[i] ^ 0x01]) + original[i + 1:]
    else:
        bad = _swap_in_other_model(trained, artifact)
        reg.set_alias("churn", "champion", 1, actor="t", reason="pin v1", action="rollback",
                      expected=reg.champion_version("churn"))
    assert len(bad) == len(original) or tamper != "bit flip"
    assert bad != original
    store.put(KEY, bad)
    assert reg.champion_version("churn") == 1
    service = trained.service(capture=False)
    with pytest.raises(IntegrityError):
        service.load_version("churn", 1)
    with pytest.raises(NotFound):  # nothing unverified is ever served
        service.predict("churn", feature_records(1))
    alerts = [n["message"] for n in trained.ctx.notifier.messages()
              if n["message"].get("event") == "integrity_error"]
    assert alerts and alerts[-1]["version"] == 1 and alerts[-1]["model"] == "churn"
    store.put(KEY, original)  # restored: served again after the refresh
    service.invalidate()
    assert service.predict("churn", feature_records(1))["version"] == 1
