"""Handlers driven with the events/ samples, against the AWS adapters under moto."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
DATASET_KEY = "datasets/churn/churn jan 2026.csv"  # the sample's URL-encoded key, decoded


def sample(name: str) -> dict:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


@pytest.fixture(scope="module")
def world():
    """moto with the topology's resources, the churn spec and a dataset at the sample's key."""
    import yaml

    from mlops_kit.adapters.aws import client
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
    from mlops_kit.emulate import in_process, load_function

    with in_process(extra_env={"MLOPSKIT_CAPTURE_MAX_AGE_S": "0",
                               "MLOPSKIT_REFRESH_SECONDS": "0"}) as res:
        s3 = client("s3", region=res.region)
        s3.put_object(Bucket=res.data_bucket, Key="specs/churn.yaml",
                      Body=yaml.safe_dump(CHURN_SPEC).encode())
        s3.put_object(Bucket=res.data_bucket, Key=DATASET_KEY, Body=churn_csv(800, seed=3))
        sqs = client("sqs", region=res.region)
        sqs.purge_queue(QueueUrl=res.queue_urls["validate"])  # real notifications: not used here
        fns = {n: load_function(n) for n in ("validate", "train", "serve", "monitor")}
        yield res, fns, s3, sqs
