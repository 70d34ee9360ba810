"""What the IAM-enforced emulation and the AWS adapters assume about moto, one behaviour a test.

The flow tests (tests/functions, tests/e2e, tests/reliability) run every handler under its
role's rendered policy in moto; when a moto upgrade changes how moto authorizes or answers,
dozens of them fail at once, far from the cause. Each test here pins one behaviour on its own,
names the moto versions it was checked on, and fails with what changed and where the emulation
adapts to it (mostly src/mlops_kit/emulate/iam.py). A behaviour the emulation merely works around
(moto more forgiving than AWS) fails here when moto stops doing it, so the workaround can go.

Checked on moto 5.1.22 and 5.2.6 (the pin, requirements/pins.in).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from mlops_kit.emulate.iam import ADMIN_POLICY, MOTO_S3_OPERATIONS, moto_policy
from tests.moto_support import REGION, moto_account

MOTO = moto.__version__
BUCKET, TABLE = "assumptions-data", "assumptions-table"
DENIED = ("AccessDenied", "AccessDeniedException", "403")
STRICT_S3 = "emulate/iam.py StrictS3"
MOTO_POLICY = "emulate/iam.py moto_policy"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", **s} for s in statements]}


class Account:
    """An in-process moto account with IAM enforced; `user(policy)` is a client factory under
    an IAM user holding exactly `policy` (the emulator's way: emulate/iam.create_identities)."""

    def __init__(self) -> None:
        self._n = 0
        self.admin = self.user(ADMIN_POLICY)

    def user(self, policy: dict[str, Any]) -> Callable[[str], Any]:
        iam = self.admin("iam") if self._n else boto3.client("iam", region_name=REGION)
        self._n += 1
        name = f"user{self._n}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return lambda service: boto3.client(
            service, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"])


@pytest.fixture
def account() -> Iterator[Account]:
    from moto.core import enable_iam_authentication

    with moto_account():
        acc = Account()  # the admin exists before enforcement starts, as in emulate.in_process
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="specs/there.yaml", Body=b"x")
        with enable_iam_authentication():
            yield acc


def _outcome(call: Callable[[], Any]) -> str:
    """'ok', 'denied', or the error code of any other refusal."""
    try:
        call()
    except ClientError as exc:
        code = str(exc.response["Error"]["Code"])
        return "denied" if code in DENIED else code
    return "ok"


# -- S3 -----------------------------------------------------------------------------------
def _s3_calls(s3: Any) -> dict[str, Callable[[], Any]]:
    def multipart() -> None:
        up = s3.create_multipart_upload(Bucket=BUCKET, Key="specs/big.bin")["UploadId"]
        part = s3.upload_part(Bucket=BUCKET, Key="specs/big.bin", UploadId=up, PartNumber=1,
                              Body=b"x")
        s3.complete_multipart_upload(Bucket=BUCKET, Key="specs/big.bin", UploadId=up,
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"],
                                                                 "PartNumber": 1}]})

    return {
        "ListObjectsV2": lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="specs/", MaxKeys=1),
        "GetObject": lambda: s3.get_object(Bucket=BUCKET, Key="specs/there.yaml"),
        "HeadObject": lambda: s3.head_object(Bucket=BUCKET, Key="specs/there.yaml"),
        "PutObject": lambda: s3.put_object(Bucket=BUCKET, Key="specs/new.yaml", Body=b"x"),
        "CopyObject": lambda: s3.copy_object(Bucket=BUCKET, Key="specs/copy.yaml", CopySource={
            "Bucket": BUCKET, "Key": "specs/there.yaml"}),
        "multipart upload": multipart,
        "DeleteObject": lambda: s3.delete_object(Bucket=BUCKET, Key="specs/new.yaml"),
    }


# The IAM action AWS checks for each call the adapters make (S3ObjectStore).
IAM_ACTION = {"ListObjectsV2": "s3:ListBucket", "GetObject": "s3:GetObject",
              "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "CopyObject": "s3:PutObject", "multipart upload": "s3:PutObject",
              "DeleteObject": "s3:DeleteObject"}


@pytest.mark.parametrize("call", list(IAM_ACTION))
def test_an_s3_call_is_allowed_by_the_iam_action_aws_checks(account, call):
    """moto 5.1.22 (and up to 5.2.5) authorizes S3 calls under the IAM action AWS checks;
    5.2.6 under the API operation's name (s3:ListObjectsV2, s3:HeadObject, s3:CopyObject,
    s3:CreateMultipartUpload...), which moto_policy adds (MOTO_S3_OPERATIONS). Either way a
    user granted only the IAM action, through moto_policy, may make the call, and a user
    granted everything else may not (so the check can fail). Checked on 5.1.22 and 5.2.6."""
    action = IAM_ACTION[call]
    others = sorted(set(IAM_ACTION.values()) - {action})
    bucket, objects = f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"
    grant = _policy({"Action": [action], "Resource": [bucket if action == "s3:ListBucket"
                                                      else objects]})
    allowed = _outcome(_s3_calls(account.user(moto_policy(grant))("s3"))[call])
    refused = _outcome(_s3_calls(account.user(moto_policy(_policy(
        {"Action": others, "Resource": [bucket, objects]})))("s3"))[call])
    raw = _outcome(_s3_calls(account.user(grant)("s3"))[call])
    naming = ("the IAM action (as up to 5.2.5)" if raw == "ok" else
              "another name: the operation's (as 5.2.6) or a new one")
    added = ", ".join(MOTO_S3_OPERATIONS.get(action, ())) or "none"
    assert allowed == "ok", (
        f"moto {MOTO} changed: {call} is refused ({allowed}) to a user granted {action} plus "
        f"the moto-only names {MOTO_POLICY} adds ({added}); moto "
        f"now authorizes it under {naming}. Add that name to MOTO_S3_OPERATIONS.")
    assert refused == "denied", (
        f"moto {MOTO} changed: {call} is no longer refused ({refused}) to a user without "
        f"{action}; the IAM-enforced flow tests would no longer catch a missing grant")


def test_a_missing_key_is_404_to_a_caller_that_may_not_list_the_bucket(account):
    """S3 answers a GET/HEAD of a missing key with 403 AccessDenied unless the caller has
    s3:ListBucket on the bucket; moto answers 404 to anyone holding s3:GetObject. StrictS3
    (_missing_key) turns that 404 into S3's 403 for the functions, which may list only some
    prefixes. Checked on 5.1.22 and 5.2.6 (GET and, through moto_policy's s3:HeadObject, HEAD)."""
    s3 = account.user(moto_policy(_policy(
        {"Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/*"]})))("s3")
    for op, call in (("GET", lambda: s3.get_object(Bucket=BUCKET, Key="specs/none.yaml")),
                     ("HEAD", lambda: s3.head_object(Bucket=BUCKET, Key="specs/none.yaml"))):
        got = _outcome(call)
        assert got in ("NoSuchKey", "404"), (
            f"moto {MOTO} changed: a {op} of a missing key now answers {got!r} to a caller "
            f"without s3:ListBucket, where moto answered 404. If it is 403 (S3's answer), "
            f"{STRICT_S3}._missing_key no longer has to rewrite it: check that a caller WITH "
            f"s3:ListBucket still gets 404 and S3ObjectStore's one-key probe still tells "
            f"a missing key from a denial (tests/functions/test_iam_enforced.py). If {op} is "
            f"refused for any key, see test_an_s3_call_is_allowed_by_the_iam_action_aws_checks")


def test_an_s3_prefix_condition_on_listing_is_not_evaluated(account):
    """AWS allows a listing only under the s3:prefix values a ListBucket grant names (the
    functions' `probes`/`lists` grants); moto ignores the condition, so StrictS3 (_listing)
    evaluates it. The prefix the grant names must be allowed by moto whatever it does.
    Checked on 5.1.22 and 5.2.6 (through moto_policy's s3:ListObjectsV2)."""
    s3 = account.user(moto_policy(_policy(
        {"Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{BUCKET}"],
         "Condition": {"StringLike": {"s3:prefix": ["specs/*"]}}})))("s3")
    inside = _outcome(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="specs/there.yaml"))
    outside = _outcome(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="models/"))
    assert inside == "ok", (
        f"moto {MOTO} changed: a listing under the granted s3:prefix is refused ({inside}); "
        f"S3ObjectStore.exists() and every missing-key probe depend on it")
    assert outside == "ok", (
        f"moto {MOTO} changed: it now evaluates s3:prefix conditions (a listing outside the "
        f"granted prefix is {outside}), as AWS does. {STRICT_S3}._listing did it for moto; "
        f"keep it (harmless) or drop it, then update this test")


def test_a_copy_is_authorized_against_its_destination_only(account):
    """AWS needs s3:GetObject on a copy's source as well as s3:PutObject on its destination;
    moto checks the destination only, so StrictS3 (_copy_source) checks the source.
    Checked on 5.1.22 and 5.2.6 (through moto_policy's s3:CopyObject)."""
    s3 = account.user(moto_policy(_policy(
        {"Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/quarantine/*"]})))("s3")
    got = _outcome(lambda: s3.copy_object(Bucket=BUCKET, Key="quarantine/x.yaml", CopySource={
        "Bucket": BUCKET, "Key": "specs/there.yaml"}))
    assert got == "ok", (
        f"moto {MOTO} changed: a copy from a source the caller may not read is now {got}; if "
        f"moto checks the source now (as AWS does), {STRICT_S3}._copy_source is redundant")


# -- DynamoDB, SNS, SQS, Batch ----------------------------------------------------------------
@pytest.fixture
def table(account) -> str:
    account.admin("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}"


def test_dynamodb_is_checked_against_star_not_the_table(account, table):
    """AWS checks a PutItem against the table's ARN; moto against "*", so a statement naming
    the table never matches there and moto_policy adds a copy on "*" (MOTO_UNSCOPED).
    Checked on 5.1.22 and 5.2.6."""
    grant = _policy({"Action": ["dynamodb:PutItem"], "Resource": [table]})

    def put(policy: dict[str, Any]) -> str:
        ddb = account.user(policy)("dynamodb")
        return _outcome(lambda: ddb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}}))

    assert put(moto_policy(grant)) == "ok", (
        f"moto {MOTO} changed: PutItem is refused even with {MOTO_POLICY}'s copy on '*'")
    assert put(grant) == "denied", (
        f"moto {MOTO} changed: DynamoDB is now checked against the table's ARN, as AWS does; "
        f"{MOTO_POLICY}'s copy on '*' (MOTO_UNSCOPED) may go for dynamodb:")


def test_transact_write_items_is_checked_as_an_action_of_its_own(account, table):
    """AWS checks each operation inside a TransactWriteItems (the registry's are Puts); moto
    checks `dynamodb:TransactWriteItems`, which moto_policy grants to whoever may PutItem.
    Checked on 5.1.22 and 5.2.6."""
    def transact(policy: dict[str, Any]) -> str:
        ddb = account.user(policy)("dynamodb")
        return _outcome(lambda: ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}}}}]))

    put_anywhere = _policy({"Action": ["dynamodb:PutItem"], "Resource": ["*"]})
    assert transact(moto_policy(put_anywhere)) == "ok", (
        f"moto {MOTO} changed: TransactWriteItems is refused despite {MOTO_POLICY}'s grant")
    assert transact(put_anywhere) == "denied", (
        f"moto {MOTO} changed: TransactWriteItems is now authorized by dynamodb:PutItem, as on "
        f"AWS; {MOTO_POLICY}'s dynamodb:TransactWriteItems may go")


def test_sns_publish_is_checked_against_star_not_the_topic(account):
    """Like DynamoDB: moto checks sns:Publish against "*". Checked on 5.1.22 and 5.2.6."""
    arn = account.admin("sns").create_topic(Name="alerts")["TopicArn"]
    grant = _policy({"Action": ["sns:Publish"], "Resource": [arn]})

    def publish(policy: dict[str, Any]) -> str:
        sns = account.user(policy)("sns")
        return _outcome(lambda: sns.publish(TopicArn=arn, Message="m"))

    assert publish(moto_policy(grant)) == "ok", (
        f"moto {MOTO} changed: Publish is refused even with {MOTO_POLICY}'s copy on '*'")
    assert publish(grant) == "denied", (
        f"moto {MOTO} changed: SNS is now checked against the topic's ARN, as AWS does; "
        f"{MOTO_POLICY}'s copy on '*' may go for sns:")


def test_sqs_is_checked_against_the_queue_arn(account):
    """The emulation relies on SQS being checked per queue ARN, as on AWS: a function may send
    to its own queues only (tests/functions/test_iam_enforced.py: monitor may not send to
    train). Checked on 5.1.22 and 5.2.6."""
    sqs = account.admin("sqs")
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("mine", "theirs")}
    arn = f"arn:aws:sqs:{REGION}:123456789012:mine"
    user = account.user(moto_policy(_policy({"Action": ["sqs:SendMessage"], "Resource": [arn]})))
    got = {n: _outcome(lambda u=u: user("sqs").send_message(QueueUrl=u, MessageBody="m"))
           for n, u in urls.items()}
    assert got == {"mine": "ok", "theirs": "denied"}, (
        f"moto {MOTO} changed: SendMessage under a grant on one queue answers {got}; the "
        f"per-queue refusals of the IAM-enforced tests rely on moto checking the queue's ARN")


def test_batch_is_checked_against_star_under_a_name_moto_policy_grants(account):
    """moto 5.1.22 checks Batch against "*" under the REST path's name in lower case
    (batch:listjobs, case-sensitive); 5.2.6 under the operation's name (batch:ListJobs).
    moto_policy's copy lists both on "*"; the rendered grant alone must not be enough on
    5.1.22. Checked on 5.1.22 and 5.2.6."""
    queue = f"arn:aws:batch:{REGION}:123456789012:job-queue/q"
    grant = _policy({"Action": ["batch:ListJobs", "batch:SubmitJob"], "Resource": [queue]})
    batch = account.user(moto_policy(grant))("batch")
    # past authorization, moto fails on the queue that does not exist (not an AccessDenied)
    got = _outcome(lambda: batch.list_jobs(jobQueue="q"))
    assert got != "denied", (
        f"moto {MOTO} changed: ListJobs is refused despite {MOTO_POLICY}'s copy on '*' (with "
        f"the actions as written and in lower case); find the name moto checks now")
    nothing = account.user(moto_policy(_policy({"Action": ["batch:DescribeJobs"],
                                                "Resource": ["*"]})))("batch")
    assert _outcome(lambda: nothing.list_jobs(jobQueue="q")) == "denied", (
        f"moto {MOTO} changed: ListJobs is allowed without a grant")


# -- switching enforcement on, and what S3 delivers to SQS ------------------------------------
def test_keys_moto_does_not_know_are_refused_once_enforcement_is_on(account):
    """emulate.in_process turns enforcement on after provisioning (moto's
    enable_iam_authentication); from then on the environment's test keys are refused, so no
    call escapes the policies. Checked on 5.1.22 and 5.2.6."""
    unknown = boto3.client("s3", region_name=REGION, aws_access_key_id="testing",
                           aws_secret_access_key="testing")
    got = _outcome(lambda: unknown.list_objects_v2(Bucket=BUCKET))
    assert got in ("InvalidAccessKeyId", "denied"), (
        f"moto {MOTO} changed: unknown keys answer {got!r} with IAM enforced")


def test_a_moto_server_enforces_iam_after_reset_auth():
    """`mlops-kit emulate` starts a moto server and switches enforcement on with POST
    /moto-api/reset-auth and a raw body "0" (emulate/iam.py enforce_on_server).
    Checked on 5.1.22 and 5.2.6."""
    from moto.server import ThreadedMotoServer

    from mlops_kit.emulate.iam import enforce_on_server

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        enforce_on_server(url)
        got = _outcome(lambda: s3.list_objects_v2(Bucket=BUCKET))
    finally:
        try:
            enforce_on_server_off(url)
        finally:
            server.stop()
    assert got in ("InvalidAccessKeyId", "denied"), (
        f"moto {MOTO} changed: after /moto-api/reset-auth with 0, a request with unknown keys "
        f"answers {got!r}; emulate/iam.py enforce_on_server no longer switches IAM on")


def test_a_moto_server_accepts_a_signed_listing_under_a_prefix_with_a_slash():
    """`mlops-kit emulate --enforce-iam` serves the functions from a moto server, which checks
    each request's SigV4 signature; every probe and listing of the functions has a "/" in its
    prefix. moto's server up to 5.2.3 (checked: 5.1.22, 5.2.0) recomputes the signature of
    such a listing from werkzeug's decoded URL (SignatureDoesNotMatch, with botocore 1.40.0 and
    1.44.18 alike); 5.2.4 and later (checked: 5.2.4, 5.2.5, 5.2.6) accept it, which is why the
    pin is 5.2.6 (requirements/pins.in). In-process moto is unaffected."""
    import botocore
    from moto.server import ThreadedMotoServer

    from mlops_kit.emulate.iam import enforce_on_server

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        admin = {"region_name": REGION, "endpoint_url": url, "aws_access_key_id": "testing",
                 "aws_secret_access_key": "testing"}
        boto3.client("s3", **admin).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="lister")
        iam.put_user_policy(UserName="lister", PolicyName="p", PolicyDocument=json.dumps(
            moto_policy(_policy({"Action": ["s3:ListBucket"],
                                 "Resource": [f"arn:aws:s3:::{BUCKET}"]}))))
        key = iam.create_access_key(UserName="lister")["AccessKey"]
        enforce_on_server(url)
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=url,
                          aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
        plain = _outcome(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="specs"))
        slash = _outcome(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="specs/x.yaml"))
    finally:
        try:
            enforce_on_server_off(url)
        finally:
            server.stop()
    assert plain == "ok", f"moto {MOTO} server: a signed listing answers {plain!r}"
    assert slash == "ok", (
        f"moto {MOTO} server (botocore {botocore.__version__}): a signed listing under a "
        f"prefix holding '/' answers {slash!r}, so `mlops-kit emulate --enforce-iam` fails every "
        f"probe and listing of the functions (tests/e2e/test_emulate*.py). moto 5.1.22 to "
        f"5.2.3 did this; 5.2.4+ does not (requirements/pins.in)")


def enforce_on_server_off(url: str) -> None:
    """Enforcement back off (the server's count is process-wide in moto)."""
    import urllib.request

    req = urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"1000000", method="POST",
                                 headers={"content-type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - our local moto


def test_s3_notifications_reach_sqs_with_a_test_event_first_and_url_encoded_keys():
    """The handlers skip S3's s3:TestEvent and unquote_plus the keys; moto delivers both.
    (moto encodes "/" too, where S3 leaves it: unquote_plus gives the same key back either
    way.) Checked on 5.1.22 and 5.2.6."""
    from urllib.parse import unquote_plus

    key = "datasets/m/a b+c.csv"
    with moto_account():
        s3, sqs = boto3.client("s3", region_name=REGION), boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        bodies = [json.loads(m["Body"]) for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert bodies and bodies[0].get("Event") == "s3:TestEvent", (
        f"moto {MOTO} changed: the first notification is not S3's s3:TestEvent: {bodies[:1]}")
    keys = [r["s3"]["object"]["key"] for b in bodies[1:] for r in b.get("Records", [])]
    assert len(keys) == 1 and keys[0].endswith("a+b%2Bc.csv") and unquote_plus(keys[0]) == key, (
        f"moto {MOTO} changed: the upload {key!r} arrives as {keys}, not form-encoded as S3 "
        f"sends it (space as '+', '+' as %2B)")


def test_ssm_get_parameter_is_checked_against_star_not_the_parameter(account):
    """The console's cookie key (issue 25): AWS checks ssm:GetParameter against the parameter's
    ARN; moto against "*", so moto_policy adds a copy on "*" (MOTO_UNSCOPED has ssm:) and
    emulate.iam.StrictSsm checks the ARN on the client instead. Checked on 5.2.6."""
    account.admin("ssm").put_parameter(Name="/mlk/console/cookie-key", Value="k",
                                       Type="SecureString")
    arn = f"arn:aws:ssm:{REGION}:123456789012:parameter/mlk/console/cookie-key"
    grant = _policy({"Action": ["ssm:GetParameter"], "Resource": [arn]})

    def get(policy: dict[str, Any]) -> str:
        ssm = account.user(policy)("ssm")
        return _outcome(lambda: ssm.get_parameter(Name="/mlk/console/cookie-key",
                                                  WithDecryption=True))

    assert get(moto_policy(grant)) == "ok", (
        f"moto {MOTO} changed: GetParameter is refused even with {MOTO_POLICY}'s copy on '*'")
    assert get(grant) == "denied", (
        f"moto {MOTO} changed: SSM is now checked against the parameter's ARN, as AWS does; "
        f"{MOTO_POLICY}'s copy on '*' for ssm: and StrictSsm may go")
