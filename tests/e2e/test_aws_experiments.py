"""An experiment on the AWS code path under moto: the upload's training job fans its trials
out as messages on the train queue, the train handler runs one trial per message (the SQS
event source mapping, batch size 1), each trial is recorded and counted in DynamoDB, and the
invocation that records the last trial refits, exports and registers the winner."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

SEARCH = {"cv": 3, "candidates": [
    {"kind": "logistic_regression", "grid": {"C": [0.01, 1.0]}},
    {"kind": "random_forest", "params": {"n_estimators": 15}, "grid": {"max_depth": [2, 6]}},
    {"kind": "random_forest", "params": {"n_estimators": 5, "bootstrap": False,
                                         "max_samples": 0.5}},  # fails at fit
]}


@pytest.fixture(scope="module")
def flow():
    import yaml

    from mlops_kit.adapters.aws import DynamoTable, client
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
    from mlops_kit.emulate import SqsPump, context_for, in_process, load_function
    from mlops_kit.topology import default_topology

    topo = default_topology()
    spec = {**CHURN_SPEC, "estimator": {"kind": "logistic_regression", "params": {}},
            "search": SEARCH}
    with in_process(topo) as res:
        c = lambda s: client(s, region=res.region)  # noqa: E731
        s3, sqs = c("s3"), c("sqs")
        fns = {f.name: load_function(f.name) for f in topo.functions}
        pumps = {q.name: SqsPump(sqs, res.queue_urls[q.name], res.queue_arns[q.name],
                                 fns[q.consumer].handler, batch_size=q.batch_size,
                                 region=res.region, retry_after=0,
                                 context=lambda n=q.consumer: context_for(topo, n))
                 for q in topo.queues}
        s3.put_object(Bucket=res.data_bucket, Key="specs/churn.yaml",
                      Body=yaml.safe_dump(spec).encode())
        s3.put_object(Bucket=res.data_bucket, Key="datasets/churn/jan.csv",
                      Body=churn_csv(900, seed=5))
        pumps["validate"].drain()
        trained = pumps["train"].drain()
        yield {"res": res, "s3": s3, "sqs": sqs, "pumps": pumps, "trained": trained,
               "table": DynamoTable(res.table, lambda: c("dynamodb"))}


def test_trials_fan_out_on_the_train_queue_and_the_best_is_registered(flow):
    table, res = flow["table"], flow["res"]
    # the training job + one message per trial, all processed, none failed
    assert flow["trained"] == 1 + 6 and flow["pumps"]["train"].failed == 0
    run = table.get("MODEL#churn", "EXPRUN#000001")
    assert run["status"] == "finished" and run["engine"] == "queue" and run["done"] == 6
    trials = table.query("MODEL#churn", "EXPTRIAL#000001#")
    assert len(trials) == 6
    ok = [t for t in trials if t["status"] == "ok"]
    [failed] = [t for t in trials if t["status"] == "failed"]
    assert "bootstrap" in failed["reason"] and len(ok) == 5
    best = max(ok, key=lambda t: (t["cv"]["roc_auc"], -t["index"]))
    assert run["winner"] == best["hash"]
    record = table.get("MODEL#churn", "VERSION#000001")
    assert record["status"] == "registered" and record["parity"]["passed"] is True
    assert record["lineage"]["experiment"]["winner"]["hash"] == best["hash"]
    assert record["metrics"]["roc_auc"] == pytest.approx(best["holdout"]["roc_auc"])
    assert table.get("MODEL#churn", "ALIAS#champion")["version"] == 1
    keys = [o["Key"] for o in flow["s3"].list_objects_v2(
        Bucket=res.artifact_bucket, Prefix="models/churn/000001/")["Contents"]]
    assert {"models/churn/000001/model.onnx", "models/churn/000001/run.html"} <= set(keys)
    dlq = flow["sqs"].receive_message(QueueUrl=res.queue_urls["train-dlq"]).get("Messages", [])
    assert dlq == []


def test_a_redelivered_trial_message_counts_once(flow):
    res, table, sqs = flow["res"], flow["table"], flow["sqs"]
    trial = table.query("MODEL#churn", "EXPTRIAL#000001#")[0]
    job = {"type": "train", "model": "churn", "dataset_key": "datasets/churn/jan.csv",
           "sha256": table.get("MODEL#churn", "VERSION#000001")["lineage"]["dataset_sha256"]}
    sqs.send_message(QueueUrl=res.queue_urls["train"], MessageBody=json.dumps(
        {"type": "trial", "model": "churn", "run": 1, "hash": trial["hash"],
         "dataset_key": job["dataset_key"], "job": job}))
    assert flow["pumps"]["train"].drain() == 1
    assert table.get("MODEL#churn", "EXPRUN#000001")["done"] == 6
    assert [i["sk"] for i in table.query("MODEL#churn", "VERSION#")] == ["VERSION#000001"]
