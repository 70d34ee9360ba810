"""moto's server mode checks SigV4 against a decoded query string (werkzeug's IRI), so a
correctly signed ListObjectsV2 with a folder prefix (`prefix=specs%2F`) is refused with
`SignatureDoesNotMatch`; `mlops_kit.emulate.moto_server` corrects it for the emulator.
Checked on moto 5.1.22 (werkzeug 3.1.9, botocore 1.44.18): each case runs in its own process,
since the correction is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.iam_enforced

SCRIPT = textwrap.dedent("""
    import json, sys
    import boto3
    from moto.server import ThreadedMotoServer
    from mlops_kit.emulate.iam import enforce_on_server
    from mlops_kit.emulate.moto_server import sign_against_the_raw_query

    if sys.argv[1] == "corrected":
        sign_against_the_raw_query()
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    kw = dict(endpoint_url=url, region_name="us-east-1")
    admin = dict(aws_access_key_id="testing", aws_secret_access_key="testing")
    iam = boto3.client("iam", **kw, **admin)
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    s3 = boto3.client("s3", **kw, **admin)
    s3.create_bucket(Bucket="probe-bucket")
    s3.put_object(Bucket="probe-bucket", Key="specs/churn.yaml", Body=b"x")
    enforce_on_server(url)

    def listing(secret, prefix):
        c = boto3.client("s3", **kw, aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=secret)
        try:
            return c.list_objects_v2(Bucket="probe-bucket", Prefix=prefix)["KeyCount"]
        except c.exceptions.ClientError as exc:
            return exc.response["Error"]["Code"]

    print(json.dumps({"plain": listing(key["SecretAccessKey"], "specs"),
                      "folder": listing(key["SecretAccessKey"], "specs/churn.yaml"),
                      "wrong_secret": listing("not-the-secret", "specs/churn.yaml")}))
    server.stop()
""")


def run(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_moto_server_refuses_a_correctly_signed_encoded_query():
    got = run("as-released")
    assert got["plain"] == 1, got
    assert got["folder"] == "SignatureDoesNotMatch", (
        "moto's server now verifies the query as sent (checked broken on moto 5.1.22): "
        f"{got}; mlops_kit/emulate/moto_server.py is no longer needed, delete it")


def test_the_correction_verifies_the_raw_query_and_still_refuses_a_bad_signature():
    got = run("corrected")
    assert got == {"plain": 1, "folder": 1, "wrong_secret": "SignatureDoesNotMatch"}, got
