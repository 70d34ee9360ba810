"""The port contracts. Every test runs against the local adapter, the AWS adapter (moto) and the
Azure adapter (Azurite)."""

from __future__ import annotations

import io
import time

import pytest

from mlops_kit.errors import ConditionFailed, InvalidName, NotFound
from mlops_kit.ports import Absent, AbsentOrEquals, Delete, Equals, Put

# -- ObjectStore -----------------------------------------------------------------------------


def test_put_get_head_roundtrip(store):
    info = store.put("models/m/000001/model.onnx", b"hello", content_type="text/plain")
    assert info.size == 5
    assert info.etag == "5d41402abc4b2a76b9719d911017c592"  # md5: the same on every backend
    assert store.get("models/m/000001/model.onnx") == b"hello"
    head = store.head("models/m/000001/model.onnx")
    assert (head.key, head.size, head.etag) == ("models/m/000001/model.onnx", 5, info.etag)
    assert store.exists("models/m/000001/model.onnx")
    assert not store.exists("models/m/000001/other")


def test_exists_is_the_exact_key_not_a_prefix(store):
    """On S3 exists() is a one-key listing with the key as prefix: only the exact key counts."""
    store.put("specs/m.yaml.bak", b"x")
    store.put("specs/m.ya", b"x")
    assert not store.exists("specs/m.yaml")
    store.put("specs/m.yaml", b"x")
    assert store.exists("specs/m.yaml") and store.exists("specs/m.ya")
    assert not store.exists("specs/m.y") and not store.exists("specs/m.yaml.b")


def test_open_streams_and_text_wrapper_reads_lines(store):
    store.put("captures/m/a.jsonl", b'{"a":1}\n{"a":2}\n')
    with store.open("captures/m/a.jsonl") as f:
        lines = [line for line in io.TextIOWrapper(f, encoding="utf-8")]
    assert lines == ['{"a":1}\n', '{"a":2}\n']
    with store.open("captures/m/a.jsonl") as f:
        assert f.read(3) == b'{"a' and f.read() == b'":1}\n{"a":2}\n'


def test_get_range_reads_only_the_range(store):
    """Batch scoring's chunks read their byte range of a big file, not the bytes before it."""
    store.put("scoring/m/big.csv", b"0123456789")
    assert store.get_range("scoring/m/big.csv", 2, 5) == b"234"
    assert store.get_range("scoring/m/big.csv", 0, 1) == b"0"
    assert store.get_range("scoring/m/big.csv", 7, 100) == b"789"  # past the end: to the end
    assert store.get_range("scoring/m/big.csv", 10, 20) == b""
    assert store.get_range("scoring/m/big.csv", 4, 4) == b""
    with pytest.raises(NotFound):
        store.get_range("scoring/m/missing.csv", 0, 3)


def test_missing_objects_raise_not_found(store):
    for call in (store.get, store.head, store.open):
        with pytest.raises(NotFound):
            call("datasets/m/missing.csv")
    with pytest.raises(NotFound):
        store.copy("datasets/m/missing.csv", "quarantine/m/x.csv")


def test_list_by_prefix_sorted(store):
    for k in ("reports/m/b.json", "reports/m/a.json", "reports/n/c.json", "models/m/x"):
        store.put(k, b"x")
    assert [i.key for i in store.list("reports/m/")] == ["reports/m/a.json", "reports/m/b.json"]
    assert [i.key for i in store.list("reports/")] == [
        "reports/m/a.json", "reports/m/b.json", "reports/n/c.json"]
    assert [i.key for i in store.list("reports/zzz/")] == []
    assert all(i.size == 1 for i in store.list("reports/"))


def test_copy_keeps_source_and_put_file(store, tmp_path):
    src = tmp_path / "d.csv"
    src.write_bytes(b"a,b\n1,2\n")
    info = store.put_file("datasets/m/d.csv", str(src))
    assert info.size == 8
    copied = store.copy("datasets/m/d.csv", "quarantine/m/d.csv")
    assert copied.etag == info.etag
    assert store.get("quarantine/m/d.csv") == b"a,b\n1,2\n"
    assert store.get("datasets/m/d.csv") == b"a,b\n1,2\n"  # the original is kept


def test_keys_with_url_special_characters(store):
    keys = ["datasets/m/a b#c?d.csv", "datasets/m/100%+x&y=z.csv", "datasets/m/é 日本.csv"]
    for k in keys:
        store.put(k, k.encode())
    assert [i.key for i in store.list("datasets/m/")] == sorted(keys)
    for k in keys:
        assert store.get(k) == k.encode() and store.head(k).key == k
    store.copy(keys[0], "quarantine/m/a b#c?d.csv")
    assert store.get("quarantine/m/a b#c?d.csv") == keys[0].encode()


def test_delete_is_idempotent(store):
    store.put("specs/m.yaml", b"x")
    store.delete("specs/m.yaml")
    store.delete("specs/m.yaml")
    assert not store.exists("specs/m.yaml")


@pytest.mark.parametrize("bad", ["", "/abs", "datasets/../x", "datasets//x", "a\\b"])
def test_bad_keys_refused(store, bad):
    with pytest.raises(InvalidName):
        store.put(bad, b"x")


@pytest.mark.parametrize("store", ["s3-routed", "blob-routed"], indirect=True)
def test_routed_store_puts_each_prefix_in_its_topology_bucket(store):
    from mlops_kit.topology import default_topology

    topo = default_topology()
    for st in topo.stores:
        for prefix in st.prefixes:
            store.put(f"{prefix}m/k", b"x")
    for st in topo.stores:
        in_bucket = sorted(i.key for i in store.buckets[st.name].list(""))
        assert in_bucket == sorted(f"{p}m/k" for p in st.prefixes)
    assert [i.key for i in store.list("")] == sorted(f"{p}m/k" for st in topo.stores
                                                     for p in st.prefixes)
    store.copy("datasets/m/k", "reports/m/copied")  # across buckets, server-side
    assert store.buckets["artifacts"].get("reports/m/copied") == b"x"
    with pytest.raises(InvalidName):
        store.put("elsewhere/x", b"x")


# -- KeyValueTable ---------------------------------------------------------------------------


def test_put_get_query_prefix_reverse_limit(table):
    for v in (3, 1, 2):
        table.put("M#a", f"VERSION#{v:06d}", {"version": v})
    table.put("M#a", "META", {"latest": 3})
    table.put("M#b", "VERSION#000009", {"version": 9})
    got = table.query("M#a", "VERSION#")
    assert [i["version"] for i in got] == [1, 2, 3]
    assert got[0]["pk"] == "M#a" and got[0]["sk"] == "VERSION#000001"
    assert [i["version"] for i in table.query("M#a", "VERSION#", reverse=True)] == [3, 2, 1]
    assert [i["version"] for i in table.query("M#a", "VERSION#", reverse=True, limit=2)] == [3, 2]
    assert [i["sk"] for i in table.query("M#a")] == ["META", "VERSION#000001", "VERSION#000002",
                                                      "VERSION#000003"]
    assert table.query("M#zzz") == []
    assert table.get("M#a", "nope") is None


def test_keys_with_any_character_roundtrip_and_sort_by_code_point(table):
    """Registry keys carry object keys (`VALIDATED#datasets/m/<file>#<etag>`): '#', '/', '?',
    '\\', tabs and any Unicode must work, sorted by code point (UTF-8 byte order) everywhere."""
    pk = "MODEL#a/b?c\\d é"
    names = ["a b.csv", "a?b.csv", "a\\b", "é.csv", "日本.csv", "a#b", "A.csv", "a\tb",
             "\U0001f600.csv", "\uff5a.csv"]
    sks = [f"VALIDATED#datasets/m/{n}#e{i}" for i, n in enumerate(names)]
    for i, sk in enumerate([*sks, "VALIDATED$", "VALIDATED"]):
        table.put(pk, sk, {"i": i})
    assert [i["sk"] for i in table.query(pk, "VALIDATED#")] == sorted(sks)
    assert [i["sk"] for i in table.query(pk, "VALIDATED#datasets/m/a")] == sorted(
        sk for sk in sks if sk.startswith("VALIDATED#datasets/m/a"))
    assert table.get(pk, sks[1]) == {"i": 1, "pk": pk, "sk": sks[1]}
    assert len(table.query(pk)) == len(sks) + 2


def test_floats_nested_values_roundtrip(table):
    item = {"metrics": {"auc": 0.8123456789012345, "loss": 1e-12, "big": 1.5e20, "whole": 2.0},
            "params": {"n": 100, "flag": True, "none": None, "name": "x", "lst": [0.1, 2, "s"]},
            "neg": -0.25}
    table.put("P", "S", item)
    got = table.get("P", "S")
    assert got["metrics"] == item["metrics"]
    assert isinstance(got["metrics"]["auc"], float)
    assert got["params"] == item["params"] and got["neg"] == -0.25
    assert type(got["params"]["n"]) is int and got["params"]["flag"] is True


def test_conditions(table):
    table.put("P", "S", {"status": "pending"}, Absent())
    with pytest.raises(ConditionFailed):
        table.put("P", "S", {"status": "x"}, Absent())
    with pytest.raises(ConditionFailed):
        table.put("P", "S", {"status": "x"}, Equals("status", "registered"))
    table.put("P", "S", {"status": "registered"}, Equals("status", "pending"))
    assert table.get("P", "S")["status"] == "registered"
    with pytest.raises(ConditionFailed):  # Equals needs the item to exist
        table.put("P", "NEW", {"a": 1}, Equals("a", None))
    table.put("P", "NEW", {"a": 1}, AbsentOrEquals("a", 5))  # absent: ok
    with pytest.raises(ConditionFailed):
        table.put("P", "NEW", {"a": 2}, AbsentOrEquals("a", 5))
    table.put("P", "NEW", {"a": 2}, AbsentOrEquals("a", 1))
    table.put("P", "NEW", {"c": 1}, Equals("b", None))  # None: the attribute is missing
    assert table.get("P", "NEW")["c"] == 1
    with pytest.raises(ConditionFailed):
        table.delete("P", "NEW", Equals("c", 2))
    table.delete("P", "NEW", Equals("c", 1))
    assert table.get("P", "NEW") is None


def test_transact_is_all_or_nothing(table):
    table.put("P", "META", {"latest": 1})
    with pytest.raises(ConditionFailed):
        table.transact([Put("P", "VERSION#2", {"v": 2}, Absent()),
                        Put("P", "META", {"latest": 2}, Equals("latest", 7))])
    assert table.get("P", "VERSION#2") is None
    assert table.get("P", "META")["latest"] == 1
    table.transact([Put("P", "VERSION#2", {"v": 2.5}, Absent()),
                    Put("P", "META", {"latest": 2}, AbsentOrEquals("latest", 1)),
                    Delete("P", "GONE")])
    assert table.get("P", "VERSION#2")["v"] == 2.5
    assert table.get("P", "META")["latest"] == 2


# -- Queue -----------------------------------------------------------------------------------


def test_send_receive_ack(queue):
    queue.send({"job": 1, "x": 0.5})
    [msg] = queue.receive(10)
    assert msg.body == {"job": 1, "x": 0.5} and msg.receive_count == 1
    assert queue.receive(10) == []  # in flight: invisible
    assert queue.depth() == 1
    queue.ack(msg)
    assert queue.depth() == 0


def test_visibility_timeout_redelivers_with_receive_count(queue):
    queue.send({"job": 2})
    [first] = queue.receive(1)
    assert queue.receive(1) == []
    time.sleep(1.2)
    [again] = queue.receive(1)
    assert again.id == first.id and again.receive_count == 2


def test_release_makes_visible_and_dead_letters_after_max_receives(queue):
    queue.send({"poison": True})
    for n in range(1, 3):
        [msg] = queue.receive(1, visibility_timeout=30)
        assert msg.receive_count == n
        queue.release(msg)
    assert queue.receive(1) == []  # received MAX_RECEIVES times: redriven to the DLQ
    dead = queue.dead_letters()
    assert [m.body for m in dead] == [{"poison": True}]
    assert queue.depth() == 0


def test_release_with_stale_receipt_is_not_found(queue):
    queue.send({"a": 1})
    [msg] = queue.receive(1)
    queue.ack(msg)
    with pytest.raises(NotFound):
        queue.release(msg)
