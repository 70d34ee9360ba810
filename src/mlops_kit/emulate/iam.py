"""IAM enforced in the emulation, so that what AWS would refuse, the emulation refuses too.

Each function runs as an IAM user in moto holding the policy `mlops_kit.iam.iam_policy` renders:
the document the Pulumi program attaches to the function's role. moto's IAM enforcement is
switched on once the resources exist (provisioning and the operator run as an admin user), and
each handler is invoked under its function's keys (`adapters.aws.acting_as`).

moto 5.x does not check everything AWS checks. What is adapted here, for moto ONLY (the policy
AWS gets is the rendered one, unchanged):

- moto checks S3, SQS, IAM and STS requests against the resource's ARN, but DynamoDB and SNS
  requests (KMS and Logs too) against "*", so a statement naming the table or the topic never
  matches there. `moto_policy` adds, next to each such statement, a copy with Resource "*"
  (the emulation has one table and one topic: "*" names nothing else).
- moto checks TransactWriteItems as the action `dynamodb:TransactWriteItems`, which IAM does not
  have (AWS checks each operation inside; the registry's transactions are Puts only). The moto
  copy allows it to a function that is granted `dynamodb:PutItem`.
- moto checks Batch requests against "*" too; up to 5.2.5 under an action named after the
  REST path in lower case (`batch:submitjob`) and compared case-sensitively, from 5.2.6 under
  the operation's name (`batch:SubmitJob`); the moto copy of a Batch statement lists its
  actions as written and in lower case (IAM itself ignores the case).
- moto evaluates no condition on an S3 request (only StringEquals, and only sts:ExternalId on
  AssumeRole): a ListBucket conditioned on s3:prefix would allow every prefix. It authorizes a
  CopyObject against the destination only (AWS also needs s3:GetObject on the source). And it
  answers a GET/HEAD of a missing key with 404 to anyone, where S3 answers 403 unless the caller
  may list the whole bucket. `StrictS3` makes those three checks itself on the function's
  clients, against the rendered policy, as S3 would.
- moto 5.2.6 (not 5.2.5 or earlier: its `BaseResponse._get_action` now names every request
  after the botocore operation it routes to) authorizes an S3 request under the name of its API
  operation, not of the IAM action AWS checks: a listing as `s3:ListObjectsV2` (IAM:
  s3:ListBucket), a HEAD as `s3:HeadObject` (IAM: s3:GetObject), a copy and the multipart calls
  as `s3:CopyObject`, `s3:CreateMultipartUpload`, `s3:UploadPart`, `s3:CompleteMultipartUpload`
  (IAM: s3:PutObject). None of those is an IAM action, so no rendered policy grants them: every
  probe of a missing key (S3ObjectStore lists the key), every HEAD, copy and multipart upload
  was refused. This is moto further from S3, not closer (a GET of a missing key is still 404
  to anyone holding s3:GetObject). The moto copy of an S3 statement adds the operation names of
  the IAM actions it grants (same resources, same condition), so the emulation is the same
  under both namings (tests/emulate/test_moto_assumptions.py checks each).
- SSM (the console's cookie key): moto checks ssm: actions against "*" too (the moto copy
  above) and never calls KMS for a SecureString. `StrictSsm` checks the parameter's ARN on the
  client itself, as SSM would; the kms:Decrypt grant is checked statically (tests/infra).
- KMS: the emulated topic has no key and the functions log to stderr, so the policy is
  rendered without `topic_key` and `log_group` (tests/infra checks those grants statically).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mlops_kit.emulate.aws_resources import ACCOUNT
from mlops_kit.iam import PolicyArns, iam_policy
from mlops_kit.topology import Topology

if TYPE_CHECKING:  # boto3 is imported only when the AWS path runs
    from mlops_kit.adapters.aws import Identity

ADMIN = "admin"  # the operator (and the provisioning): the identity the user's clients get
MOTO_UNSCOPED = ("dynamodb:", "sns:", "batch:", "ssm:")  # moto checks these against "*"
# IAM action -> the S3 API operations moto >= 5.2.6 authorizes under their own names instead
MOTO_S3_OPERATIONS: dict[str, tuple[str, ...]] = {
    "s3:ListBucket": ("s3:ListObjectsV2", "s3:ListObjects"),
    "s3:GetObject": ("s3:HeadObject",),
    "s3:PutObject": ("s3:CopyObject", "s3:UploadPartCopy", "s3:CreateMultipartUpload",
                     "s3:UploadPart", "s3:CompleteMultipartUpload"),
}
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "EmulatorOperator", "Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def moto_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered policy plus the moto-only statements described in the module docstring."""
    out = [dict(s) for s in policy["Statement"]]
    for stmt in policy["Statement"]:
        actions = _as_list(stmt["Action"])
        operations = [op for a in actions for op in MOTO_S3_OPERATIONS.get(a, ())]
        if operations:  # same resources and condition: only the names differ
            out.append({**stmt, "Sid": f"{stmt.get('Sid', 'S')}MotoOperationNames",
                        "Action": operations})
        if not all(a.startswith(MOTO_UNSCOPED) for a in actions):
            continue
        extra = list(actions)
        if "dynamodb:PutItem" in actions:
            extra.append("dynamodb:TransactWriteItems")
        # moto names a Batch action after its REST path (batch:submitjob) and compares case
        # by case; IAM's action names are case-insensitive
        extra += [a.lower() for a in actions if a.startswith("batch:")]
        out.append({**stmt, "Sid": f"{stmt.get('Sid', 'S')}MotoChecksStar", "Action": extra,
                    "Resource": ["*"]})
    return {**policy, "Statement": out}


# -- a small evaluator for the checks moto skips (Allow statements, IAM wildcards) -------------
def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]
                     ) -> bool:
    for operator, keys in condition.items():
        if operator not in ("StringLike", "StringEquals"):
            return False  # unknown to this evaluator: refuse rather than allow
        for key, expected in keys.items():
            if key not in context:  # AWS: a missing key fails a String* operator
                return False
            like = operator == "StringLike"
            if not any(_glob(e, context[key]) if like else e == context[key]
                       for e in _as_list(expected)):
                return False
    return True


def allows(policy: Mapping[str, Any], action: str, resource: str,
           context: Mapping[str, str] | None = None) -> bool:
    return any(
        s["Effect"] == "Allow"
        and any(_glob(a, action, case=False) for a in _as_list(s["Action"]))
        and any(_glob(r, resource) for r in _as_list(s["Resource"]))
        and ("Condition" not in s or _condition_holds(s["Condition"], context or {}))
        for s in _as_list(policy["Statement"]))


class StrictS3:
    """botocore hooks on one function's S3 client: what S3 checks and moto does not."""

    def __init__(self, policy: Mapping[str, Any], who: str) -> None:
        self.policy, self.who = policy, who

    def __call__(self, service: str, client: Any) -> None:
        if service != "s3":
            return
        events = client.meta.events
        for op in ("ListObjectsV2", "ListObjects"):
            events.register(f"before-parameter-build.s3.{op}", self._listing)
        for op in ("CopyObject", "UploadPartCopy"):
            events.register(f"before-parameter-build.s3.{op}", self._copy_source)
        for op in ("GetObject", "HeadObject"):
            events.register(f"before-parameter-build.s3.{op}", self._remember_bucket)
            events.register(f"after-call.s3.{op}", self._missing_key)

    def _denied(self, operation: str, action: str, resource: str, why: str) -> Exception:
        from botocore.exceptions import ClientError

        return ClientError({"Error": {"Code": "AccessDenied", "Message": (
            f"User: {self.who} is not authorized to perform: {action} on resource: {resource} "
            f"({why}; checked by the emulator, moto does not)")},
            "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)

    def _listing(self, params: dict, model: Any, **_: Any) -> None:
        bucket = f"arn:aws:s3:::{params.get('Bucket')}"
        context = {"s3:prefix": params["Prefix"]} if params.get("Prefix") is not None else {}
        if not allows(self.policy, "s3:ListBucket", bucket, context):
            raise self._denied(model.name, "s3:ListBucket", bucket,
                               f"s3:prefix {params.get('Prefix')!r}")

    def _copy_source(self, params: dict, model: Any, **_: Any) -> None:
        src = params.get("CopySource")
        if isinstance(src, Mapping):
            src = f"{src.get('Bucket')}/{src.get('Key')}"
        resource = f"arn:aws:s3:::{str(src).lstrip('/').split('?')[0]}"
        if not allows(self.policy, "s3:GetObject", resource):
            raise self._denied(model.name, "s3:GetObject", resource, "the copy's source")

    @staticmethod
    def _remember_bucket(params: dict, context: dict, **_: Any) -> None:
        context["mlops_kit_bucket"] = params.get("Bucket")

    def _missing_key(self, http_response: Any, parsed: dict, model: Any, context: dict,
                     **_: Any) -> None:
        bucket = f"arn:aws:s3:::{context.get('mlops_kit_bucket')}"
        if http_response.status_code != 404 or allows(self.policy, "s3:ListBucket", bucket):
            return
        # S3 answers 403, not 404, when the caller may not list the bucket (no s3:prefix)
        head = model.name == "HeadObject"
        parsed["Error"] = {"Code": "403" if head else "AccessDenied",
                           "Message": "Forbidden" if head else "Access Denied (a missing key, "
                           "and no s3:ListBucket on the bucket; emulated, moto answers 404)"}
        parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = 403


class StrictSsm:
    """botocore hook on an SSM client: the parameter's ARN checked against the policy (moto
    checks ssm: actions against Resource "*" only)."""

    OPERATIONS = ("GetParameter", "PutParameter", "DeleteParameter", "GetParameterHistory")

    def __init__(self, policy: Mapping[str, Any], who: str) -> None:
        self.policy, self.who = policy, who

    def __call__(self, service: str, client: Any) -> None:
        if service != "ssm":
            return
        region = client.meta.region_name

        def check(params: dict, model: Any, **_: Any) -> None:
            from botocore.exceptions import ClientError

            name = str(params.get("Name", ""))
            arn = f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{name.lstrip('/')}"
            if not allows(self.policy, f"ssm:{model.name}", arn):
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": (
                    f"User: {self.who} is not authorized to perform: ssm:{model.name} on "
                    f"resource: {arn} (checked by the emulator, moto does not)")},
                    "ResponseMetadata": {"HTTPStatusCode": 400}}, model.name)

        for op in self.OPERATIONS:
            client.meta.events.register(f"before-parameter-build.ssm.{op}", check)


# -- provisioning --------------------------------------------------------------------------
def create_identities(iam: Any, topology: Topology, arns: PolicyArns, *, prefix: str,
                      names: Iterable[str] | None = None) -> dict[str, Identity]:
    """An admin user and one user per function holding its rendered policy (as moto checks
    it); returns each one's keys, with StrictS3 on the functions' S3 clients."""
    from mlops_kit.adapters.aws import Identity

    out: dict[str, Identity] = {}
    principals = [f.name for f in topology.functions] + [j.name for j in topology.batch_jobs]
    for name in [ADMIN, *(names or principals)]:
        user = f"{prefix}-{name}"
        rendered = ADMIN_POLICY if name == ADMIN else iam_policy(topology, name, arns)
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=f"{user}-policy",
                            PolicyDocument=json.dumps(
                                rendered if name == ADMIN else moto_policy(rendered)))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
        out[name] = Identity(name, key["AccessKeyId"], key["SecretAccessKey"],
                             instrument=None if name == ADMIN else StrictS3(rendered, arn))
    return out


def enforce_on_server(endpoint_url: str) -> None:
    """A moto server checks every request from now on: the runtime form of starting it with
    INITIAL_NO_AUTH_ACTION_COUNT=0 (moto's /moto-api/reset-auth, what the decorator
    `set_initial_no_auth_action_count` calls in server mode)."""
    import urllib.request

    # not form-encoded (urllib's default): moto reads the raw body as the count
    req = urllib.request.Request(f"{endpoint_url}/moto-api/reset-auth", data=b"0",
                                 method="POST", headers={"content-type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our local moto
        if resp.status != 200:
            raise RuntimeError(f"moto refused to enforce IAM: {resp.status}")


def acting(identity: Identity | None, handler: Callable) -> Callable:
    """The handler invoked under the identity's keys (its function's role)."""
    if identity is None:
        return handler

    from mlops_kit.adapters.aws import acting_as

    def invoke(event: Any, context: Any) -> Any:
        with acting_as(identity):
            return handler(event, context)

    invoke.__wrapped__ = handler  # type: ignore[attr-defined]
    return invoke
