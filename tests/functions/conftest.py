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
    """moto with the topology's resources, the churn spec and a dataset at the sample's key;
    IAM enforced: each handler runs under its own role's policy (tests.moto_support)."""
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
    from tests.moto_support import aws_world

    with aws_world(spec=CHURN_SPEC) as w:
        w.put(DATASET_KEY, churn_csv(800, seed=3))
        w.sqs.purge_queue(QueueUrl=w.res.queue_urls["validate"])  # notifications: not used here
        yield w.res, w.fns, w.s3, w.sqs
