"""Console sign-in on AWS (issue 25, consoleAuth): the routes, the Lambda REQUEST authorizer, the
cookie key's parameter and the role that reads it, rendered under mocks for a Cognito stack and
a stack with an external OIDC issuer, and checked against API Gateway's, SSM's and Cognito's
documented rules (pages cited per rule). docs/deploy-aws.md's "Deploy-time checks" lists them.
"""

from __future__ import annotations

import json
import re

import pytest

from infra.components.console_signin import SSM_PLACEHOLDER, signin_policy
from infra.config import ConfigError, parse_config
from mlops_kit.adapters.aws.ssm import PLACEHOLDER
from tests.infra.harness import REGION, Graph, base_config, run_program
from tests.infra.iam_eval import allows

AUTHORIZER_PAGE = ("https://docs.aws.amazon.com/apigateway/latest/developerguide/"
                   "http-api-lambda-authorizer.html")
ROUTES_PAGE = "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html"
AUTHORIZER_API_PAGE = ("https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/"
                       "apis-apiid-authorizers.html")
PERMISSION_PAGE = ("https://docs.aws.amazon.com/apigateway/latest/developerguide/"
                   "http-api-lambda-authorizer.html#http-api-lambda-authorizer.permissions")
SSM_KMS_PAGE = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
                "sysman-paramstore-access.html")
COGNITO_CLIENT_PAGE = ("https://docs.aws.amazon.com/cognito/latest/developerguide/"
                       "user-pool-settings-client-apps.html")
COGNITO_ISSUER_PAGE = ("https://docs.aws.amazon.com/cognito/latest/developerguide/"
                       "amazon-cognito-user-pools-using-the-id-token.html")

AUTHZ, ROUTE = "aws:apigatewayv2/authorizer:Authorizer", "aws:apigatewayv2/route:Route"
INTEGRATION, FN = "aws:apigatewayv2/integration:Integration", "aws:lambda/function:Function"
POLICY, PARAM = "aws:iam/rolePolicy:RolePolicy", "aws:ssm/parameter:Parameter"
PREFIX = "mlopskit-prod"
ISSUER = "https://login.example.com/tenant"

COGNITO_DOMAIN_PAGE = ("https://docs.aws.amazon.com/cognito/latest/developerguide/"
                       "cognito-user-pools-assign-domain-prefix.html")


@pytest.fixture(scope="module")
def stacks(package_dir) -> dict[str, Graph]:
    return {
        "cognito": run_program(base_config(package_dir, namePrefix=PREFIX, consoleAuth="cognito")),
        "oidc": run_program(base_config(package_dir, namePrefix=PREFIX, consoleAuth="oidc",
                                        consoleOidcIssuer=ISSUER, consoleOidcClientId="mk")),
        "jwt-cognito": run_program(base_config(
            package_dir, namePrefix=PREFIX, consoleAuth="cognito", authMode="jwt",
            jwtIssuer="https://issuer.example.com", jwtAudience='["mlk"]')),
    }


SIGNIN_STACKS = ("cognito", "oidc", "jwt-cognito")


def _routes(g: Graph) -> dict[str, dict]:
    return {r.inputs["routeKey"]: r.inputs for r in g.of(ROUTE)}


def _integration_fn(g: Graph, route: dict) -> str:
    integ_id = route["target"].removeprefix("integrations/")
    integ = next(r for r in g.of(INTEGRATION) if f"{r.name}-id" == integ_id)
    return integ.inputs["integrationUri"].rsplit(":", 1)[-1]


@pytest.mark.parametrize("stack", SIGNIN_STACKS)
def test_the_authorizer_is_a_request_authorizer_of_the_documented_shape(stacks, stack):
    """AUTHORIZER_PAGE: HTTP API Lambda authorizers take payload format 1.0 or 2.0 (required
    outside the console); simple responses (`{"isAuthorized": bool}`) exist only with 2.0;
    identity sources are selection expressions `$request.header.<name>` (or querystring,
    context, stageVariables); the result TTL is 0-3600 s, 0 turning caching off
    (AUTHORIZER_API_PAGE). Caching must be off or keyed on the cookie: it is off, so a rotated
    key or an expired session counts at once."""
    [authz] = stacks[stack].of(AUTHZ) if stack != "jwt-cognito" else \
        [a for a in stacks[stack].of(AUTHZ) if a.inputs["authorizerType"] == "REQUEST"]
    i = authz.inputs
    assert i["authorizerType"] == "REQUEST"
    assert i["authorizerPayloadFormatVersion"] in ("1.0", "2.0")
    assert i["authorizerPayloadFormatVersion"] == "2.0" and i["enableSimpleResponses"] is True
    sources = i["identitySources"]
    assert sources == ["$request.header.Cookie"]
    assert all(re.fullmatch(r"\$(request\.(header|querystring)\.[A-Za-z0-9_-]+"
                            r"|context\.[A-Za-z0-9_.]+|stageVariables\.[A-Za-z0-9_]+)", s)
               for s in sources)
    ttl = i.get("authorizerResultTtlInSeconds", 0)
    assert 0 <= ttl <= 3600 and ttl == 0
    assert i["authorizerUri"].endswith(":function:mlopskit-prod-console-authorizer/invocations")


@pytest.mark.parametrize("stack", SIGNIN_STACKS)
def test_console_routes_open_only_the_sign_in_and_guard_the_pages_with_the_cookie(stacks, stack):
    """ROUTES_PAGE: route keys are `METHOD /path`, a greedy `{proxy+}` only at the end; the most
    specific route wins, so /ui/login and /ui/callback reach the sign-in function although
    /ui/{proxy+} exists. GET /ui passes the cookie authorizer to serve as well: an HTTP API may
    route /ui/ (the models page) to GET /ui (reported in aws-powertools/powertools-lambda-python
    #1552). Everything else keeps IAM or JWT: never anonymous."""
    g = stacks[stack]
    routes = _routes(g)
    for key in routes:
        assert re.fullmatch(r"(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|ANY) "
                            r"/([A-Za-z0-9._:-]+|\{\w+\})(/([A-Za-z0-9._:-]+|\{\w+\}))*"
                            r"(/\{\w+\+\})?", key), key
    for key in ("GET /ui/login", "GET /ui/callback", "POST /ui/logout"):
        assert routes[key]["authorizationType"] == "NONE", key
        assert _integration_fn(g, routes[key]) == "mlopskit-prod-console-signin"
    authz = next(a for a in g.of(AUTHZ) if a.inputs["authorizerType"] == "REQUEST")
    for key in ("GET /ui", "GET /ui/{proxy+}"):
        page = routes[key]
        assert page["authorizationType"] == "CUSTOM", key
        assert page["authorizerId"] == f"{authz.name}-id"
        assert _integration_fn(g, page) == "mlopskit-prod-serve"
    assert sorted(k for k, r in routes.items() if r["authorizationType"] == "NONE") == [
        "GET /ui/callback", "GET /ui/login", "POST /ui/logout"]
    expected = "JWT" if stack == "jwt-cognito" else "AWS_IAM"
    others = {k: r["authorizationType"] for k, r in routes.items()
              if not k.startswith(("GET /ui", "POST /ui/logout"))}
    assert others and set(others.values()) == {expected}


def test_without_console_auth_the_console_stays_behind_iam(graph):
    routes = _routes(graph)
    assert "GET /ui/login" not in routes and not graph.of(AUTHZ)
    assert routes["GET /ui"]["authorizationType"] == routes["GET /ui/{proxy+}"][
        "authorizationType"] == "AWS_IAM"
    assert not graph.of(PARAM) and not graph.of("aws:cognito/userPool:UserPool")


@pytest.mark.parametrize("stack", SIGNIN_STACKS)
def test_api_gateway_may_invoke_the_authorizer_and_the_sign_in_function(stacks, stack):
    """PERMISSION_PAGE: API Gateway needs lambda:InvokeFunction on the authorizer; its source
    ARN is `<execution arn>/authorizers/<id>`, not a route's."""
    perms = {r.inputs["function"]: r.inputs["sourceArn"]
             for r in stacks[stack].of("aws:lambda/permission:Permission")}
    assert re.fullmatch(r"arn:aws:execute-api:[^:]+:\d{12}:\w+/authorizers/\*",
                        perms["mlopskit-prod-console-authorizer"])
    assert perms["mlopskit-prod-console-signin"].endswith("/*/*")


@pytest.mark.parametrize("stack", SIGNIN_STACKS)
def test_the_cookie_key_is_a_secure_string_the_functions_read_and_nothing_else(stacks, stack):
    """SSM_KMS_PAGE: reading a SecureString takes ssm:GetParameter on the parameter and
    kms:Decrypt on its key; kms:ViaService limits the decrypt to SSM's own calls. The functions
    get the parameter's name, never its value; the value is never in Pulumi state."""
    g = stacks[stack]
    [param] = g.of(PARAM)
    assert param.inputs["type"] == "SecureString" and param.inputs["keyId"]
    value = param.inputs["value"]  # a Pulumi secret: {<secret signature>: ..., "value": ...}
    assert isinstance(value, dict) and "4dabf18193072939515e22adb298388d" in value
    assert value["value"] == SSM_PLACEHOLDER == PLACEHOLDER
    for fn in ("mlopskit-prod-console-signin", "mlopskit-prod-console-authorizer"):
        env = g.by_state(FN, "name", fn).inputs["environment"]["variables"]
        assert env["MLOPSKIT_CONSOLE_KEY_PARAMETER"] == param.inputs["name"]
        assert not any(PLACEHOLDER in str(v) for v in env.values())
    [policy] = [p for p in g.of(POLICY) if p.name == "mlopskit-prod-console-policy"]
    doc = json.loads(policy.inputs["policy"])
    # the parameter's own key (keyId is its ARN), not the last key registered: the mocks
    # register resources in the order their inputs resolve, which varies run to run
    arn, key = param.state["arn"], g.by_state("aws:kms/key:Key", "arn", param.inputs["keyId"]
                                              ).state["arn"]
    assert key.endswith("-console-key")
    ctx = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
    assert allows(doc, "ssm:GetParameter", arn)
    assert allows(doc, "kms:Decrypt", key, ctx)
    assert not allows(doc, "kms:Decrypt", key, {"kms:ViaService": "s3.amazonaws.com"})
    for action, resource in [("ssm:GetParameter", arn + "-other"), ("ssm:PutParameter", arn),
                             ("ssm:GetParametersByPath", arn), ("kms:Decrypt", key + "x"),
                             ("s3:GetObject", "arn:aws:s3:::anything/x"),
                             ("dynamodb:Query", "arn:aws:dynamodb:*:*:table/x")]:
        assert not allows(doc, action, resource, ctx), (action, resource)
    resources = [r for s in doc["Statement"] for r in
                 ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    assert all("*" not in r.split(":log-group:")[0] for r in resources)


def test_the_cognito_client_is_public_code_flow_with_the_api_callback(stacks):
    """COGNITO_CLIENT_PAGE: the hosted UI's authorization-code grant needs
    allowed_oauth_flows_user_pool_client, the `code` flow, `openid` in the scopes and every
    redirect_uri listed in callback_urls (https); a public client has no secret (PKCE instead).
    COGNITO_ISSUER_PAGE: the ID token's iss is https://cognito-idp.<region>.amazonaws.com/<pool>."""
    g = stacks["cognito"]
    [client] = g.of("aws:cognito/userPoolClient:UserPoolClient")
    i = client.inputs
    assert i["allowedOauthFlows"] == ["code"] and i["allowedOauthFlowsUserPoolClient"] is True
    assert "openid" in i["allowedOauthScopes"] and i.get("generateSecret") is False
    api = g.of("aws:apigatewayv2/api:Api")[0].state["apiEndpoint"]
    assert i["callbackUrls"] == [f"{api}/ui/callback"] and api.startswith("https://")
    [pool] = g.of("aws:cognito/userPool:UserPool")
    assert pool.inputs["adminCreateUserConfig"]["allowAdminCreateUserOnly"] is True
    env = g.by_state(FN, "name", "mlopskit-prod-console-signin").inputs["environment"]["variables"]
    assert env["MLOPSKIT_CONSOLE_OIDC_ISSUER"] == \
        f"https://cognito-idp.{REGION}.amazonaws.com/{pool.name}-id"
    assert env["MLOPSKIT_CONSOLE_OIDC_CLIENT_ID"] == f"{client.name}-id"
    [domain] = g.of("aws:cognito/userPoolDomain:UserPoolDomain")
    # a hosted-UI prefix domain: lower-case letters, digits and hyphens, at most 63
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", domain.inputs["domain"])
    assert g.outputs["console_url"] == f"{api}/ui/login"


@pytest.mark.parametrize("prefix", ["mlopskit-prod", "AWS-Amazon-cognito-team", "x" * 60])
def test_the_hosted_domain_prefix_is_one_cognito_accepts(prefix):
    """COGNITO_DOMAIN_PAGE: a prefix domain is [a-z0-9-], at most 63 characters, and may not
    contain the reserved words aws, amazon or cognito (a stack prefix may)."""
    from infra.components.console_signin import hosted_domain

    d = hosted_domain(prefix, "a1b2c3d4e5")
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", d), d
    assert not re.search(r"aws|amazon|cognito", d) and d.endswith("-a1b2c3d4e5")


def test_an_external_issuer_needs_no_user_pool(stacks):
    g = stacks["oidc"]
    assert not g.of("aws:cognito/userPool:UserPool")
    env = g.by_state(FN, "name", "mlopskit-prod-console-signin").inputs["environment"]["variables"]
    assert env["MLOPSKIT_CONSOLE_OIDC_ISSUER"] == ISSUER
    assert env["MLOPSKIT_CONSOLE_OIDC_CLIENT_ID"] == "mk"


@pytest.mark.parametrize(("raw", "message"), [
    ({"consoleAuth": "basic"}, "consoleAuth: 'basic' must be none, cognito or oidc"),
    ({"consoleAuth": "oidc"}, "consoleOidcIssuer: required"),
    ({"consoleAuth": "oidc", "consoleOidcIssuer": "http://plain.example.com",
      "consoleOidcClientId": "x"}, "an https:// issuer URL"),
    ({"consoleAuth": "oidc", "consoleOidcIssuer": ISSUER}, "consoleOidcClientId: required"),
    ({"consoleAuth": "cognito", "consoleOidcIssuer": ISSUER}, "only used with consoleAuth oidc"),
])
def test_console_auth_config_is_checked_before_anything_is_created(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"region": "eu-west-1", "namePrefix": "mlk-test", **raw}, ["serve"])


def test_the_policy_renderer_is_the_one_the_emulation_uses():
    doc = signin_policy("arn:aws:ssm:eu-west-1:1:parameter/p", "arn:aws:kms:eu-west-1:1:key/k",
                        "eu-west-1", ["arn:aws:logs:eu-west-1:1:log-group:/aws/lambda/x"])
    assert [s["Sid"] for s in doc["Statement"]] == ["ReadCookieKey", "DecryptCookieKey", "Logs"]
