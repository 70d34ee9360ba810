"""`pulumi preview` needs no Docker daemon and installs nothing: the zips come from the cache
`make package` fills, and the training image is not built."""

from __future__ import annotations

import pytest

from infra import __main__ as program
from infra import lambda_zips
from tests.infra.harness import base_config, run_program


@pytest.fixture
def no_pip(monkeypatch):
    calls = []

    def install(reqs, target):
        calls.append(target)
        target.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(lambda_zips, "install_deps", install)
    return calls


def test_preview_without_cached_zips_says_make_package(tmp_path, monkeypatch, no_pip):
    monkeypatch.setattr(program, "ZIP_CACHE", tmp_path / "lambda")
    with pytest.raises(lambda_zips.PackagesNotBuilt, match="run `make package` first"):
        run_program(base_config(None, packageDir=None), preview=True)
    assert no_pip == []  # nothing was installed


def test_preview_uses_the_cache_and_builds_no_image(tmp_path, monkeypatch, no_pip):
    cache = tmp_path / "lambda"
    monkeypatch.setattr(program, "ZIP_CACHE", cache)
    # `make package` (pip stubbed out: this test is about the cache, not about wheels)
    built = {a.function: a.sha256 for a in lambda_zips.build_all(cache)}
    installs = len(no_pip)
    assert installs >= 1
    pytest.importorskip("pulumi_docker_build")
    g = run_program(base_config(None, packageDir=None, trainImageUri=None), preview=True)
    assert len(no_pip) == installs  # the preview installed nothing
    rendered = {r.name for r in g.of("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert {f"mlk-test-{fn}-code" for fn in built} - rendered == {"mlk-test-jobs-code"}
    for fn, sha in built.items():  # make package builds every stack's zips (jobs: batch only)
        if f"mlk-test-{fn}-code" not in rendered:
            continue
        code = g.one("aws:s3/bucketObjectv2:BucketObjectv2", f"mlk-test-{fn}-code")
        assert code.inputs["key"] == f"{fn}/{sha}.zip"  # the cached zip, not a new one
    (image,) = g.of("docker-build:index:Image")
    assert image.inputs["buildOnPreview"] is False


def test_a_changed_source_file_invalidates_the_cache(tmp_path, monkeypatch, no_pip):
    root = tmp_path / "repo"
    (root / "src" / "mlops_kit").mkdir(parents=True)
    (root / "functions").mkdir()
    (root / "pyproject.toml").write_text(
        (lambda_zips.ROOT / "pyproject.toml").read_text())
    (root / "src" / "mlops_kit" / "__init__.py").write_text("V = 1\n")
    (root / "functions" / "serve.py").write_text("def handler(e, c):\n    return e\n")
    first = lambda_zips.inputs_fingerprint("serve", root=root)
    assert lambda_zips.inputs_fingerprint("serve", root=root) == first
    (root / "src" / "mlops_kit" / "__init__.py").write_text("V = 2\n")
    assert lambda_zips.inputs_fingerprint("serve", root=root) != first


@pytest.mark.parametrize("stack", ["dev", "prod-batch-prebuilt", "jwt", "console-cognito",
                                   "console-oidc"])
def test_preview_of_the_four_stacks(stack, package_dir):
    """Issue 25: `pulumi preview` under mocks (preview=True: unknowns stay unknown) for AWS dev,
    AWS prod with Batch and a prebuilt image, AWS with JWT; the Azure stack is
    tests/infra/test_azure_deploy_rules.py's."""
    import json

    overrides = {
        "dev": {"namePrefix": "mlopskit-dev", "deletionProtection": "false"},
        "prod-batch-prebuilt": {
            "namePrefix": "mlopskit-prod", "batch": json.dumps({"enabled": True, "spot": True}),
            "trainImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/train:v7"},
        "jwt": {"authMode": "jwt", "jwtIssuer": "https://issuer.example.com",
                "jwtAudience": '["client"]'},
        # console sign-in from a browser (issue 25): Cognito, or an external issuer
        "console-cognito": {"consoleAuth": "cognito"},
        "console-oidc": {"consoleAuth": "oidc", "consoleOidcIssuer": "https://id.example.com",
                         "consoleOidcClientId": "console"},
    }[stack]
    g = run_program(base_config(package_dir, **overrides), preview=True)
    functions = {r.name for r in g.of("aws:lambda/function:Function")}
    assert {f"{overrides.get('namePrefix', 'mlk-test')}-{fn}" for fn in
            ("validate", "train", "serve", "monitor")} <= functions
    assert bool(g.of("aws:batch/jobDefinition:JobDefinition")) == (stack == "prod-batch-prebuilt")
    kinds = sorted(a.inputs["authorizerType"] for a in g.of("aws:apigatewayv2/authorizer:Authorizer"))
    assert kinds == {"jwt": ["JWT"], "console-cognito": ["REQUEST"],
                     "console-oidc": ["REQUEST"]}.get(stack, [])
    assert bool(g.of("aws:cognito/userPool:UserPool")) == (stack == "console-cognito")
