"""Bad specs and names: YAML is loaded safely (no object construction, no alias bombs), sizes
are limited, and model names and object keys cannot traverse or escape their prefix -- at the
spec parser, the layout, both object stores, the lifecycle and the HTTP routes."""

from __future__ import annotations

import json

import pytest
import yaml

from mlops_kit.adapters.aws.store import check_key
from mlops_kit.adapters.local import FileObjectStore
from mlops_kit.core import layout
from mlops_kit.core.layout import check_name
from mlops_kit.core.spec import MAX_SPEC_BYTES, load_spec_bytes
from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
from mlops_kit.errors import InvalidName, SpecError
from mlops_kit.local.worker import put_object, run_once
from tests.support import FAST_SPEC, apply_spec

GOOD_YAML = yaml.safe_dump(FAST_SPEC)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    base = yaml.safe_dump({k: v for k, v in FAST_SPEC.items() if k != "estimator"})
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return base + "estimator:\n  kind: logistic_regression\n  params:\n" + "".join(
        f"    {line}\n" for line in lines)


@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/module:os",
])
def test_python_yaml_tags_are_refused_and_never_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    raw = GOOD_YAML + f"x_evil: {payload.format(marker=marker)}\n"
    with pytest.raises(SpecError) as info:
        load_spec_bytes(raw.encode(), source="specs/churn.yaml")
    assert "specs/churn.yaml" in info.value.message and "python" in info.value.message
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused_quickly():
    raw = _alias_bomb().encode()
    assert len(raw) < 4096  # tiny on disk; 9**9 values once expanded
    with pytest.raises(SpecError, match="expands to more than"):
        load_spec_bytes(raw, source="specs/churn.yaml")


def test_ordinary_yaml_anchors_still_work():
    raw = b"""
name: anchors
task: binary_classification
target: y
estimator: {kind: logistic_regression, params: {}}
features:
  - {name: a, type: categorical, categories: &levels [low, mid, high]}
  - {name: b, type: categorical, categories: *levels}
"""
    spec = load_spec_bytes(raw)
    assert [f.categories for f in spec.features] == [["low", "mid", "high"]] * 2


@pytest.mark.parametrize(("raw", "message"), [
    (b"x" * (MAX_SPEC_BYTES + 1), "larger than"),
    (("description: " + "y" * MAX_SPEC_BYTES + "\n").encode(), "larger than"),
    (b"\xff\xfe not utf-8", "not valid UTF-8"),
    (b"[1, 2, 3]", "mapping"),
    (b"name: churn\ntask: [unclosed", "not valid YAML"),
    (b"{\"name\": \"churn\",", "not valid JSON at line 1, column 18"),
    (json.dumps({**CHURN_SPEC, "name": "../../etc"}).encode(), "name"),
    (json.dumps({**CHURN_SPEC, "features": [{"name": f"f{i}", "type": "numeric"}
                                            for i in range(1001)]}).encode(), "features"),
])
def test_bad_specs_give_a_spec_error_naming_the_problem(raw, message):
    with pytest.raises(SpecError) as info:
        load_spec_bytes(raw, source="specs/churn.yaml")
    assert message in info.value.message
    assert "Traceback" not in info.value.message


BAD_NAMES = ["", "../etc", "..", "a/b", "A", "churn/../other", "-x", "x" * 64, "churn\x00",
             "churn%2f..", "churn ", "ü", "churn.yaml", "c\\d"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_model_names_are_refused_everywhere(name):
    with pytest.raises(InvalidName):
        check_name(name)
    for make in (layout.spec_keys, lambda m: layout.model_prefix(m, 1),
                 lambda m: layout.dataset_key(m, "a.csv"),
                 lambda m: layout.quarantine_key(m, "a.csv")):
        with pytest.raises(InvalidName):
            make(name)


@pytest.mark.parametrize("filename", ["../../specs/churn.yaml", "..", "a\x01.csv", "x" * 256,
                                      "", "/"])
def test_upload_file_names_cannot_escape_the_dataset_prefix(filename):
    try:
        key = layout.dataset_key("churn", filename)
    except InvalidName:
        return
    assert key.startswith("datasets/churn/") and key.count("/") == 2 and ".." not in key


ESCAPING_KEYS = ["../outside", "datasets/../../outside", "datasets/churn/../../../x",
                 "/etc/passwd", "datasets//churn/a.csv", "datasets/churn/./a.csv",
                 "a\\..\\b", "nul\x00byte", "datasets/churn/a.csv/.."]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_object_keys_cannot_escape_either_store(tmp_path, key):
    store = FileObjectStore(tmp_path / "store")
    with pytest.raises(InvalidName):
        store.put(key, b"x")
    with pytest.raises(InvalidName):
        check_key(key)
    assert not (tmp_path / "outside").exists() and not (tmp_path / "x").exists()
    # none of them starts a job (the old `or ".." not in key` let 5 of the 9 pass unchecked)
    assert layout.parse_key(key).kind == "other"


def test_symlink_escape_from_the_local_store_is_refused(tmp_path):
    store = FileObjectStore(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store" / "datasets").mkdir(parents=True)
    (tmp_path / "store" / "datasets" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidName, match="escapes"):
        store.put("datasets/link/evil.csv", b"x")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("key", ["datasets/../specs/churn.csv", "datasets/Churn/a.csv",
                                 "datasets/churn/sub/a.csv", "datasets/churn/", "specs/../x.yaml",
                                 "datasets/" + "x" * 64 + "/a.csv", "labels/../datasets/a.csv"])
def test_events_for_keys_outside_the_layout_start_nothing(backend, key):
    from mlops_kit.core.router import on_object_created

    assert layout.parse_key(key).kind == "other"
    out = on_object_created(backend.ctx, key)
    assert out["status"] == "ignored"
    assert backend.ctx.train_queue.depth() == 0


def test_a_spec_whose_name_disagrees_with_its_key_is_refused(backend):
    """specs/churn.yaml that says `name: other` cannot train (or overwrite) model `other`: the
    upload is quarantined at once with the reason (a spec error is final, never retried)."""
    apply_spec(backend, FAST_SPEC)
    backend.ctx.store.put("specs/churn.yaml", yaml.safe_dump({**FAST_SPEC, "name": "other"})
                          .encode())
    put_object(backend, "datasets/churn/a.csv", churn_csv(300, seed=3))
    results = run_once(backend)
    assert [r["status"] for r in results] == ["quarantined"]
    assert "name is 'other'" in results[0]["summary"]
    assert backend.ctx.registry.list_models() == []
    assert backend.validate_queue.dead_letters() == []


def test_a_malicious_spec_in_storage_fails_the_job_without_running(backend, tmp_path):
    marker = tmp_path / "pwned"
    backend.ctx.store.put("specs/churn.yaml", (GOOD_YAML + f"x: !!python/object/apply:os.system "
                                               f"['touch {marker}']\n").encode())
    put_object(backend, "datasets/churn/a.csv", churn_csv(300, seed=3))
    results = run_once(backend)
    assert [r["status"] for r in results] == ["quarantined"]  # final: never retried
    assert "specs/churn.yaml" in results[0]["summary"]
    report = json.loads(backend.ctx.store.get("quarantine/churn/a.csv.report.json"))
    assert report["rules"][0]["rule"] == "spec" and "specs/churn.yaml" in report["summary"]
    assert backend.validate_queue.dead_letters() == []
    assert not marker.exists()
    assert backend.ctx.store.exists("datasets/churn/a.csv")


@pytest.mark.parametrize("path", ["/v1/models/..%2F..%2Fetc:predict", "/v1/models/../x:predict",
                                  "/v2/models/churn%00/infer", "/v1/models/CHURN:predict",
                                  "/v2/models/" + "a" * 64 + "/infer"])
def test_http_model_names_outside_the_rules_are_404(served, path):
    _, api, token = served
    resp = api.handle("POST", path, {"authorization": f"Bearer {token}"},
                      b'{"instances": [{}], "inputs": []}')
    assert resp.status == 404 and resp.body["code"] == "not_found"
