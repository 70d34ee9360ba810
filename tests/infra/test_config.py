"""Stack config validation: every bad key fails with a message naming the key and the rule."""

from __future__ import annotations

import pytest

from infra.config import ConfigError, StackConfig, parse_config
from mlops_kit.topology import default_topology
from tests.infra.harness import base_config, run_program

FUNCTIONS = [f.name for f in default_topology().functions]
GOOD = {"region": "eu-west-1", "namePrefix": "mlopskit-dev"}


def errors(**raw) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config({**GOOD, **raw}, FUNCTIONS)
    return str(exc.value)


def test_defaults_are_secure():
    cfg = parse_config(GOOD, FUNCTIONS)
    assert cfg == StackConfig(region="eu-west-1", name_prefix="mlopskit-dev")
    assert cfg.auth_mode == "iam" and cfg.deletion_protection is True
    assert cfg.log_retention_days == 30 and cfg.sse_algorithm == "aws:kms"


def test_full_config_parses():
    cfg = parse_config({**GOOD, "schedule": "rate(15 minutes)", "memory": {"serve": "2048"},
                        "authMode": "JWT", "jwtIssuer": "https://issuer.example.com",
                        "jwtAudience": "a, b", "logRetentionDays": "90",
                        "deletionProtection": "false", "alarmEmail": "ops@example.com",
                        "sseAlgorithm": "AES256", "throttleRateLimit": "10",
                        "throttleBurstLimit": "20", "latencyP99Ms": "500"}, FUNCTIONS)
    assert cfg.memory == {"serve": 2048} and cfg.memory_for("serve", 1) == 2048
    assert cfg.memory_for("train", 3008) == 3008
    assert cfg.auth_mode == "jwt" and cfg.jwt_audience == ("a", "b")
    assert cfg.log_retention_days == 90 and cfg.deletion_protection is False
    assert cfg.throttle_rate_limit == 10 and cfg.throttle_burst_limit == 20


def test_bad_auth_mode():
    msg = errors(authMode="basic")
    assert "authMode: 'basic' must be iam or jwt" in msg


def test_auth_mode_none_is_refused():
    msg = errors(authMode="none")
    assert "authMode: 'none' is not allowed" in msg and "never anonymous" in msg


def test_jwt_needs_issuer_and_audience():
    msg = errors(authMode="jwt")
    assert "jwtIssuer: required when authMode is jwt" in msg
    assert "jwtAudience: required when authMode is jwt" in msg
    assert "jwtIssuer" in errors(authMode="jwt", jwtIssuer="http://plain", jwtAudience="a")


@pytest.mark.parametrize("days", ["2", "31", "0", "-1", "forever"])
def test_bad_log_retention(days):
    msg = errors(logRetentionDays=days)
    assert "logRetentionDays" in msg
    if days.lstrip("-").isdigit():
        assert f"{days} is not accepted by CloudWatch Logs; use one of 1, 3, 5, 7, 14" in msg
    else:
        assert "expected a whole number" in msg


def test_region_required_and_checked():
    assert "aws:region: required" in errors(region=None)
    assert "aws:region: 'europe' is not an AWS region" in errors(region="europe")


@pytest.mark.parametrize("prefix", ["ML", "a", "has_underscore", "-x", "x" * 30, "a--b"])
def test_bad_name_prefix(prefix):
    assert f"namePrefix: {prefix!r} must be 3-24 chars" in errors(namePrefix=prefix)


@pytest.mark.parametrize("expr", ["every hour", "rate(1 hours)", "rate(5 minute)",
                                  "rate(0 minutes)", "cron(0 6 * *)"])
def test_bad_schedule(expr):
    assert f"schedule: {expr!r}" in errors(schedule=expr)


def test_memory_overrides_checked():
    msg = errors(memory={"serv": 1024, "train": 20000, "serve": "lots"})
    assert "memory.serv: unknown function; known: validate, train, serve, monitor" in msg
    assert "memory.train: 20000 MB is outside 128-10240" in msg
    assert "memory.serve: expected a whole number, got 'lots'" in msg
    assert "memory: expected an object" in errors(memory="2048")


def test_other_keys_checked():
    assert "alarmEmail: 'nobody' is not an email" in errors(alarmEmail="nobody")
    assert "sseAlgorithm: 'none' must be one of aws:kms, AES256" in errors(sseAlgorithm="none")
    assert "deletionProtection: expected true or false" in errors(deletionProtection="maybe")
    assert "trainImageUri" in errors(trainImageUri="docker.io/library/python:3.12")
    assert "throttleRateLimit: expected >= 1 request/s" in errors(throttleRateLimit="0")
    assert "throttleRateLimit: expected a whole number" in errors(throttleRateLimit="2.5")


def test_reserved_concurrency_is_opt_in_and_checked():
    assert parse_config(GOOD, FUNCTIONS).reserved_concurrency == {}
    cfg = parse_config({**GOOD, "reservedConcurrency": {"train": "3"}}, FUNCTIONS)
    assert cfg.reserved_concurrency == {"train": 3}
    msg = errors(reservedConcurrency={"trian": 2, "serve": 0})
    assert "reservedConcurrency.trian: unknown function" in msg
    assert "reservedConcurrency.serve: 0 concurrent executions is outside 1-1000" in msg


@pytest.mark.parametrize("uri", [
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlk-train:abc123",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlk-train@sha256:" + "a" * 64,
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/mlk-train:v1@sha256:" + "b" * 64,
])
def test_train_image_uri_accepts_tag_digest_or_both(uri):
    assert parse_config({**GOOD, "trainImageUri": uri}, FUNCTIONS).train_image_uri == uri


@pytest.mark.parametrize("uri", [
    "docker.io/library/python:3.12",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlk-train",  # neither tag nor digest
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlk-train@sha256:short",
])
def test_train_image_uri_refused(uri):
    assert "trainImageUri" in errors(trainImageUri=uri)


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        parse_config({"authMode": "none", "logRetentionDays": "2"}, FUNCTIONS)
    assert len(exc.value.problems) == 4  # region, namePrefix, authMode, retention
    assert str(exc.value).startswith("invalid stack configuration:\n  - ")


def test_program_fails_on_bad_config_before_creating_anything(package_dir):
    with pytest.raises(ConfigError, match="authMode: 'none' is not allowed") as exc:
        run_program(base_config(package_dir, authMode="none", logRetentionDays="45"))
    assert "logRetentionDays: 45 is not accepted" in str(exc.value)


def test_plain_string_audience_and_bad_memory_through_pulumi_config(package_dir):
    g = run_program(base_config(package_dir, authMode="jwt", jwtIssuer="https://i.example.com",
                                jwtAudience="aud1,aud2"))
    (auth,) = g.of("aws:apigatewayv2/authorizer:Authorizer")
    assert auth.inputs["jwtConfiguration"]["audiences"] == ["aud1", "aud2"]
    with pytest.raises(ConfigError, match="memory: expected an object"):
        run_program(base_config(package_dir, memory="2048"))
