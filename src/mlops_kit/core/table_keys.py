"""Every key of the key-value table, spelled once (object keys and prefixes are core/layout's).
Users script against neither, but every backend stores these exact strings: changing one is a
data migration.

pk = MODEL#<name> (the registry; every transaction stays in this one partition):
  VERSION#000001   immutable version record (status pending -> registered | rejected | failed)
  RUN#<key>        idempotency: one version per (dataset sha256, spec hash)
  ALIAS#champion   the served version;  ALIAS#challenger  canary/shadow version + weight
  HIST#<seq>       append-only history of every alias move (who, from, to, why)
  HISTSEQ          the history sequence (conditional writes give one total order)
  META             latest version number (moved by conditional write -> monotonic versions)
  MON#<time>       one compact summary per monitoring run (drift scores, live quality)
  SUMMARY          what the console shows of the model, written in the transaction of every
                   registry change (core/registry/summary.py)
  EXPRUN#<run>     an experiment run;  EXPTRIAL#<run>#<candidate>  one of its trials
pk = MODELS, sk = <name>                      the model index, with a copy of the model's
                                              SUMMARY (one query lists every model)
pk = IDEMPOTENCY, sk = VALIDATED#<key>#<etag>#<spec hash[:16]>   a validated upload
pk = LABELS#<name>, sk = <labels key>        a quarantined labels file (by key and etag)
pk = TRAINJOB#<name>, sk = <run key>         a training job handed to the batch engine
pk = MONITOR#<name>, sk = RETRAIN            the retrain-on-drift cooldown claim
pk = SCORING#<name>, sk = JOB#<file>#<etag>   a batch scoring job; CHUNK#<file>#<etag>#00003 a chunk
"""

from __future__ import annotations

from typing import Any

from mlops_kit.core.layout import check_name


def strip_keys(item: dict[str, Any]) -> dict[str, Any]:
    """An item without its pk and sk: the record the caller stored."""
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}

# -- the registry: one partition per model ------------------------------------------------
MODELS_PK = "MODELS"
VERSION_PREFIX = "VERSION#"
RUN_PREFIX = "RUN#"
ALIAS_PREFIX = "ALIAS#"
HISTORY_PREFIX = "HIST#"
HISTORY_SEQ_SK = "HISTSEQ"
META_SK = "META"
SUMMARY_SK = "SUMMARY"
MONITOR_RUN_PREFIX = "MON#"
EXPERIMENT_RUN_PREFIX = "EXPRUN#"
TRIAL_PREFIX = "EXPTRIAL#"
# rows of a model that retirement's delete removes (HIST#, HISTSEQ, META stay: the audit and
# the numbering)
MODEL_ROW_PREFIXES = (VERSION_PREFIX, RUN_PREFIX, ALIAS_PREFIX, MONITOR_RUN_PREFIX,
                      EXPERIMENT_RUN_PREFIX, TRIAL_PREFIX)


def model_pk(model: str) -> str:
    return f"MODEL#{check_name(model)}"


def version_sk(version: int) -> str:
    return f"{VERSION_PREFIX}{version:06d}"


def run_key_sk(run_key: str) -> str:
    return f"{RUN_PREFIX}{run_key}"


def alias_sk(alias: str) -> str:
    return f"{ALIAS_PREFIX}{alias}"


def history_sk(seq: int) -> str:
    return f"{HISTORY_PREFIX}{seq:010d}"


def monitor_run_sk(at: str) -> str:
    return f"{MONITOR_RUN_PREFIX}{at}"


def experiment_run_sk(run: int | str) -> str:
    return f"{EXPERIMENT_RUN_PREFIX}{int(run):06d}"


def trials_prefix(run: int | str) -> str:
    return f"{TRIAL_PREFIX}{int(run):06d}#"


def trial_sk(run: int | str, candidate: str) -> str:
    return f"{trials_prefix(run)}{candidate}"


# -- markers outside the registry ---------------------------------------------------------
IDEMPOTENCY_PK = "IDEMPOTENCY"
RETRAIN_SK = "RETRAIN"
TRAIN_JOB_PREFIX = "TRAINJOB#"


def validated_sk(key: str, etag: str | None, spec_hash: str | None) -> str:
    return f"VALIDATED#{key}#{etag}#{(spec_hash or 'no-spec')[:16]}"


def labels_pk(model: str) -> str:
    return f"LABELS#{check_name(model)}"


def train_job_pk(model: str) -> str:
    return f"{TRAIN_JOB_PREFIX}{model}"


def monitor_pk(model: str) -> str:
    return f"MONITOR#{model}"


# -- batch scoring: one partition per model (core/scoring/records.py) ------------------------
SCORING_PK = "SCORING#"


def scoring_pk(model: str) -> str:
    return f"{SCORING_PK}{check_name(model)}"


def _etag_tag(etag: str) -> str:
    return "".join(c for c in str(etag) if c.isalnum() or c in "-_") or "none"


def scoring_job_sk(name: str, etag: str) -> str:
    return f"JOB#{name}#{_etag_tag(etag)}"


def scoring_chunk_sk(name: str, etag: str, index: int) -> str:
    return f"CHUNK#{name}#{_etag_tag(etag)}#{int(index):05d}"
