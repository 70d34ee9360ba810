"""Azure semantics the port contract alone does not prove, on Azurite: the poison queue the
adapter manages itself, ETag-pinned conditions under races, create-only puts, single-partition
transactions, emulated long polling, key encoding and item size, and the factory."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

import pytest

from mlops_kit.adapters.azure.table import CrossPartitionTransaction
from mlops_kit.errors import ConditionFailed, InvalidName, NotFound, StorageError
from mlops_kit.ports import Absent, Equals, KeyValueTable, Notifier, ObjectStore, Put, Queue

# -- queue ------------------------------------------------------------------------------------


@pytest.fixture
def squeue(azure):
    from mlops_kit.adapters.azure import StorageQueue

    return StorageQueue(azure.make_queue(), azure.queue, visibility_timeout=1, max_receives=2)


def test_poison_queue_after_max_receives_by_visibility_expiry(squeue, azure):
    squeue.send({"job": "poison"})
    for n in (1, 2):
        [msg] = squeue.receive(1)
        assert msg.receive_count == n  # Azure's dequeue_count
        time.sleep(1.1)  # crashed consumer: the visibility timeout runs out, no release
    assert squeue.receive(1) == []  # the third receive moves it instead of handing it out
    assert squeue.depth() == 0
    assert [m.body for m in squeue.dead_letters()] == [{"job": "poison"}]
    # the poison copy keeps the original encoding: a Functions host reads it like any message
    [raw] = azure.queue().get_queue_client(squeue.poison_name).peek_messages()
    assert json.loads(base64.b64decode(raw.content)) == {"job": "poison"}


def test_poisoned_message_does_not_hide_healthy_ones(squeue):
    squeue.send({"job": "bad"})
    for _ in range(2):
        [msg] = squeue.receive(1, visibility_timeout=30)
        squeue.release(msg)
    squeue.send({"job": "good"})
    got = squeue.receive(5)
    assert [m.body for m in got] == [{"job": "good"}]
    assert [m.body for m in squeue.dead_letters()] == [{"job": "bad"}]


def test_long_poll_waits_for_a_message_then_gives_up(squeue):
    timer = threading.Timer(0.5, squeue.send, args=({"late": True},))
    timer.start()
    try:
        got = squeue.receive(1, wait_seconds=5)
    finally:
        timer.join()
    assert [m.body for m in got] == [{"late": True}]  # sent after the first poll found nothing
    squeue.ack(got[0])
    started = time.monotonic()
    assert squeue.receive(1, wait_seconds=1) == []
    assert time.monotonic() - started >= 1.0  # waited the whole time, not one poll


def test_extend_keeps_holding_and_release_hands_back(squeue):
    squeue.send({"long": "job"})
    [msg] = squeue.receive(1, visibility_timeout=1)
    first_receipt = msg.receipt
    squeue.extend(msg, 30)
    assert msg.receipt != first_receipt  # Azure issues a new receipt per update
    time.sleep(1.2)
    assert squeue.receive(1) == []  # still held past the original 1 s
    squeue.release(msg)
    [again] = squeue.receive(1)
    assert again.id == msg.id and again.receive_count == 2
    with pytest.raises(NotFound):
        squeue.extend(msg, 10)  # that receipt was superseded by the new receive


def test_plain_json_bodies_are_read_too(squeue, azure):
    """Event Grid and other senders put plain JSON on a queue; both encodings are read."""
    azure.queue().get_queue_client(squeue.name).send_message('{"eventType": "BlobCreated"}')
    azure.queue().get_queue_client(squeue.name).send_message("not json")
    bodies = sorted((m.body for m in squeue.receive(5)), key=str)
    assert bodies == [{"eventType": "BlobCreated"}, {"raw": "not json"}]


# -- table ------------------------------------------------------------------------------------


@pytest.fixture
def atable(azure):
    from mlops_kit.adapters.azure import AzureTable

    return AzureTable(azure.make_table(), azure.table)


def test_transaction_across_partitions_is_refused_before_any_write(atable):
    with pytest.raises(CrossPartitionTransaction) as info:
        atable.transact([Put("MODEL#churn", "META", {"latest": 1}, Absent()),
                         Put("MODELS", "churn", {"model": "churn"})])
    assert "one partition" in info.value.message and "'MODELS'" in info.value.message
    assert atable.get("MODEL#churn", "META") is None and atable.get("MODELS", "churn") is None


def test_stale_etag_fails_the_whole_transaction_then_it_decides_again(atable, azure, monkeypatch):
    """Between our read and our write another writer moves the item: Azure refuses the pinned
    batch, we read again, and the condition is judged on the new state."""
    from mlops_kit.adapters.azure import AzureTable

    other = AzureTable(atable.name, azure.table)
    atable.put("P", "META", {"latest": 1, "note": "a"})
    real_read, raced = AzureTable._read, []

    def racing_read(self, pk, sk):
        got = real_read(self, pk, sk)
        if self is atable and sk == "META" and not raced:
            raced.append(1)  # another writer changes an unrelated attribute after our read
            other.put("P", "META", {"latest": 1, "note": "b"})
        return got

    monkeypatch.setattr(AzureTable, "_read", racing_read)
    atable.transact([Put("P", "META", {"latest": 2, "note": "b"}, Equals("latest", 1)),
                     Put("P", "VERSION#2", {"v": 2}, Absent())])
    assert raced and atable.get("P", "META")["latest"] == 2  # still held on re-read: written

    raced.clear()

    def racing_read_2(self, pk, sk):
        got = real_read(self, pk, sk)
        if self is atable and sk == "META" and not raced:
            raced.append(1)  # now the attribute of the condition moves
            other.put("P", "META", {"latest": 9})
        return got

    monkeypatch.setattr(AzureTable, "_read", racing_read_2)
    with pytest.raises(ConditionFailed):
        atable.transact([Put("P", "META", {"latest": 3}, Equals("latest", 2)),
                         Put("P", "VERSION#3", {"v": 3}, Absent())])
    assert atable.get("P", "META")["latest"] == 9
    assert atable.get("P", "VERSION#3") is None  # all or nothing


def test_concurrent_conditional_increments_lose_no_update(atable, azure):
    from mlops_kit.adapters.azure import AzureTable

    atable.put("C", "N", {"n": 0})
    failures = []

    def bump(times):
        table = AzureTable(atable.name, azure.table)
        for _ in range(times):
            while True:
                n = table.get("C", "N")["n"]
                try:
                    table.put("C", "N", {"n": n + 1}, Equals("n", n))
                    break
                except ConditionFailed:
                    failures.append(1)

    threads = [threading.Thread(target=bump, args=(8,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert atable.get("C", "N")["n"] == 32


def test_create_only_put_has_one_winner(atable, azure):
    from mlops_kit.adapters.azure import AzureTable

    wins, lost = [], []

    def claim(i):
        try:
            AzureTable(atable.name, azure.table).put("LOCK", "RETRAIN", {"by": i}, Absent())
            wins.append(i)
        except ConditionFailed:
            lost.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(lost) == 5
    assert atable.get("LOCK", "RETRAIN")["by"] == wins[0]


def test_big_items_span_properties_and_the_limit_is_dynamodbs(atable):
    item = {"lineage": {"columns": ["c" * 50] * 2000}, "note": "é" * 1000}  # ~110K chars of JSON
    atable.put("P", "BIG", item)
    assert atable.get("P", "BIG") == {**item, "pk": "P", "sk": "BIG"}
    with pytest.raises(StorageError, match="400000"):
        atable.put("P", "HUGE", {"x": "y" * 400_001})
    with pytest.raises(InvalidName):
        atable.put("P", "k" * 513, {})


# -- object store -----------------------------------------------------------------------------


@pytest.fixture
def blobs(azure):
    from mlops_kit.adapters.azure import BlobObjectStore

    return BlobObjectStore(azure.container(), azure.blob)


def test_create_only_and_if_match_puts(blobs):
    first = blobs.put("specs/m.yaml", b"v1", if_absent=True)
    with pytest.raises(ConditionFailed):
        blobs.put("specs/m.yaml", b"v2", if_absent=True)
    assert blobs.get("specs/m.yaml") == b"v1"
    second = blobs.put("specs/m.yaml", b"v2", if_match=first.etag)
    with pytest.raises(ConditionFailed):  # the etag the caller saw is no longer current
        blobs.put("specs/m.yaml", b"v3", if_match=first.etag)
    with pytest.raises(ConditionFailed):  # If-Match needs the object to exist
        blobs.put("specs/other.yaml", b"x", if_match=first.etag)
    assert blobs.get("specs/m.yaml") == b"v2" and blobs.head("specs/m.yaml").etag == second.etag


def test_concurrent_create_only_puts_have_one_winner(blobs):
    wins = []

    def put(i):
        try:
            blobs.put("models/m/000001/model.onnx", f"w{i}".encode(), if_absent=True)
            wins.append(i)
        except ConditionFailed:
            pass

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and blobs.get("models/m/000001/model.onnx") == f"w{wins[0]}".encode()


def test_block_upload_keeps_md5_etag_and_streams_back(azure, tmp_path):
    """Past max_single_put_size the SDK uploads blocks; the md5 still reaches the blob."""
    from functools import partial

    from azure.storage.blob import BlobServiceClient

    from mlops_kit.adapters.azure import BlobObjectStore

    small = BlobServiceClient.from_connection_string(
        azure.account.connection_string, max_single_put_size=1 << 20, max_block_size=1 << 20,
        max_single_get_size=1 << 20, max_chunk_get_size=1 << 20)
    store = BlobObjectStore(azure.container(), partial(lambda c: c, small))
    data = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: four blocks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    info = store.put_file("datasets/m/big.bin", str(path))
    assert info.etag == hashlib.md5(data).hexdigest() == store.head("datasets/m/big.bin").etag
    with store.open("datasets/m/big.bin") as f:
        parts = [f.read(700_000) for _ in range(6)]
    assert b"".join(parts) == data


def test_blob_from_another_client_without_md5_gets_its_azure_etag(blobs, azure):
    container = azure.blob().get_container_client(blobs.container)
    container.get_blob_client("datasets/m/x.csv").stage_block("b1", b"a,b\n")
    container.get_blob_client("datasets/m/x.csv").commit_block_list(["b1"])
    info = blobs.head("datasets/m/x.csv")
    assert info.etag and info.etag == next(iter(blobs.list("datasets/m/"))).etag
    assert info.etag != hashlib.md5(b"a,b\n").hexdigest()  # no md5 was given: the ETag stands in


# -- factory ----------------------------------------------------------------------------------


def test_factory_builds_every_port_on_provisioned_resources(azurite, azure, caplog):
    from mlops_kit.adapters.azure.factory import build, provision
    from mlops_kit.settings import Settings
    from mlops_kit.topology import default_topology

    topo = default_topology()
    s = Settings(backend="azure", azure_connection_string=azurite.connection_string,
                 azure_data_container=azure.unique("data"),
                 azure_artifact_container=azure.unique("art"),
                 azure_table_name=azure.unique("reg"), azure_validate_queue=azure.unique("val"),
                 azure_train_queue=azure.unique("train"), azure_alerts_queue=azure.unique("alerts"))
    names = provision(s, topo)
    provision(s, topo)  # idempotent
    parts = build(s, topo)
    for port, kind in [("store", ObjectStore), ("table", KeyValueTable),
                       ("validate_queue", Queue), ("train_queue", Queue), ("notifier", Notifier)]:
        assert isinstance(getattr(parts, port), kind), port
    parts.store.put("datasets/m/a.csv", b"x")
    parts.store.put("models/m/1/model.onnx", b"y")
    blob = azure.blob()
    assert [b.name for b in blob.get_container_client(names.containers["data"]).list_blobs()] == [
        "datasets/m/a.csv"]
    assert [b.name for b in blob.get_container_client(names.containers["artifacts"]).list_blobs()
            ] == ["models/m/1/model.onnx"]
    assert parts.train_queue.visibility_timeout == topo.visibility_timeout("train")
    assert parts.train_queue.max_receives == topo.queue("train").max_receives
    assert parts.validate_queue.poison_name == f"{names.queues['validate']}-poison"
    with caplog.at_level("WARNING", logger="mlops_kit.alerts"):
        parts.notifier.publish("mlops-kit: churn promoted", {"version": 2})
    [alert] = parts.notifier.messages()
    assert alert["subject"] == "mlops-kit: churn promoted" and alert["message"] == {"version": 2}
    # and the log record Application Insights' alert rule finds (issue 25): the same alert
    [logged] = [r.getMessage() for r in caplog.records if r.name == "mlops_kit.alerts"]
    assert logged.startswith("MLOPSKIT_ALERT ") and json.loads(logged[15:]) == alert
    parts.table.put("P", "S", {"a": 1})
    assert parts.table.get("P", "S")["a"] == 1
    from mlops_kit.bootstrap import build_backend  # the composition root picks this factory

    backend = build_backend(s, topology=topo)
    assert backend.ctx.store.get("datasets/m/a.csv") == b"x"
    assert backend.validate_queue.name == names.queues["validate"]
    for name in [*names.containers.values()]:
        blob.delete_container(name)
    for q in [*names.queues.values(), names.alerts]:
        azure.queue().delete_queue(q)
    for q in names.queues.values():
        azure.queue().delete_queue(f"{q}-poison")
    azure.table().delete_table(names.table)


def test_registry_transactions_stay_in_one_partition(atable):
    from mlops_kit.clock import SystemClock
    from mlops_kit.core.registry.model_registry import Registry

    reg = Registry(atable, SystemClock())
    res = reg.reserve_version("churn", "run-1", {"dataset": "datasets/churn/a.csv"})
    reg.complete_version("churn", res.version, {"status": "registered"})
    reg.promote("churn", res.version, actor="test", reason="first")
    assert reg.champion_version("churn") == res.version and reg.list_models() == ["churn"]
