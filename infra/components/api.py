"""The inference API: an HTTP API in front of the serve function, never anonymous.

Every topology route requires either IAM (SigV4-signed requests; callers need
execute-api:Invoke) or a JWT authorizer (issuer + audiences from stack config). With
consoleAuth, the console's routes are the exception browsers need: `GET /ui/login` and
`/ui/callback` go to the sign-in function unauthenticated, `GET /ui` and `GET /ui/{proxy+}` pass
a Lambda REQUEST authorizer that checks the session cookie (console_signin.py). The $default
stage throttles and writes JSON access logs to a log group with retention.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.console_signin import ConsoleSignIn, ConsoleSignInArgs
from infra.components.tags import component_tags
from infra.config import AuthMode
from mlops_kit.topology import HttpTrigger

ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller", "user": "$context.identity.user",
    "requestTime": "$context.requestTime", "method": "$context.httpMethod",
    "routeKey": "$context.routeKey", "path": "$context.path", "status": "$context.status",
    "protocol": "$context.protocol", "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
})

_PARTIAL_VAR = re.compile(r"\{(\w+)\}.+|.+\{(\w+)\}")


def route_keys(http: HttpTrigger) -> list[str]:
    """API Gateway route keys for the topology's routes.

    API Gateway path variables must be a whole segment, so a KServe path like
    /v1/models/{model}:predict is routed as /v1/models/{model} (the serve handler matches the
    raw path itself). Duplicates after that mapping collapse; order is kept.
    """
    keys: list[str] = []
    for method, path in http.routes:
        segments = []
        for seg in path.strip("/").split("/"):
            m = _PARTIAL_VAR.fullmatch(seg)
            segments.append("{" + (m.group(1) or m.group(2)) + "}" if m else seg)
        key = f"{method.upper()} /" + "/".join(segments)
        if key not in keys:
            keys.append(key)
    return keys


@dataclass
class InferenceApiArgs:
    http: HttpTrigger
    name_prefix: str
    function: aws.lambda_.Function
    auth_mode: AuthMode = "iam"
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    log_retention_days: int = 30
    throttle_rate_limit: float = 50.0
    throttle_burst_limit: int = 100
    detailed_metrics: bool = False  # per-route metrics cost extra: off unless asked for
    # consoleAuth: browsers sign in to /ui with OIDC and a cookie (console_signin.py)
    console: ConsoleSignInArgs | None = None


# With console sign-in: the OIDC flow's two pages are open (that is where a browser signs in);
# every other console page passes the cookie authorizer. GET /ui is guarded too: HTTP APIs may
# route /ui/ (the models page) to the GET /ui route, which must therefore reach serve.
CONSOLE_OPEN = ("GET /ui/login", "GET /ui/callback", "POST /ui/logout")
CONSOLE_COOKIE = ("GET /ui", "GET /ui/{proxy+}")


class InferenceApi(pulumi.ComponentResource):
    def __init__(self, name: str, args: InferenceApiArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:api:InferenceApi", name, None, opts)
        if args.auth_mode not in ("iam", "jwt"):  # config validates too; never build anonymous
            raise ValueError(f"auth_mode must be iam or jwt, got {args.auth_mode!r}")
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        tags = component_tags("api")
        self.api = aws.apigatewayv2.Api(f"{prefix}-api", protocol_type="HTTP",
                                        description="mlops-kit inference API", tags=tags,
                                        opts=child)
        integration = aws.apigatewayv2.Integration(
            f"{prefix}-api-{args.http.function}", api_id=self.api.id,
            integration_type="AWS_PROXY", integration_uri=args.function.arn,
            payload_format_version="2.0", opts=child)
        authorizer_id = None
        if args.auth_mode == "jwt":
            authorizer_id = aws.apigatewayv2.Authorizer(
                f"{prefix}-api-jwt", api_id=self.api.id, authorizer_type="JWT",
                identity_sources=["$request.header.Authorization"],
                jwt_configuration={"issuer": args.jwt_issuer,
                                   "audiences": list(args.jwt_audience)},
                opts=child).id
        self.console: ConsoleSignIn | None = None
        if args.console is not None:
            self.console = ConsoleSignIn(f"{prefix}-console", dataclasses.replace(
                args.console, api=self.api), child)
        self.routes: dict[str, aws.apigatewayv2.Route] = {}
        keys = route_keys(args.http)
        if self.console is not None:
            keys += [k for k in CONSOLE_OPEN if k not in keys]
        for key in keys:
            slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")
            target, auth_type, auth_id = integration, \
                "AWS_IAM" if args.auth_mode == "iam" else "JWT", authorizer_id
            if self.console is not None and key in CONSOLE_OPEN:
                target, auth_type, auth_id = self.console.integration, "NONE", None
            elif self.console is not None and key in CONSOLE_COOKIE:
                auth_type, auth_id = "CUSTOM", self.console.authorizer.id
            self.routes[key] = aws.apigatewayv2.Route(
                f"{prefix}-route-{slug}", api_id=self.api.id, route_key=key,
                target=target.id.apply(lambda i: f"integrations/{i}"),
                authorization_type=auth_type, authorizer_id=auth_id, opts=child)
        access_logs = aws.cloudwatch.LogGroup(
            f"{prefix}-api-access-logs", retention_in_days=args.log_retention_days, tags=tags,
            opts=child)
        self.stage = aws.apigatewayv2.Stage(
            f"{prefix}-api-stage", api_id=self.api.id, name="$default", auto_deploy=True,
            default_route_settings={"throttling_rate_limit": args.throttle_rate_limit,
                                    "throttling_burst_limit": args.throttle_burst_limit,
                                    "detailed_metrics_enabled": args.detailed_metrics},
            access_log_settings={"destination_arn": access_logs.arn,
                                 "format": ACCESS_LOG_FORMAT}, tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.routes.values())))
        aws.lambda_.Permission(
            f"{prefix}-api-invoke-{args.http.function}", action="lambda:InvokeFunction",
            function=args.function.name, principal="apigateway.amazonaws.com",
            source_arn=self.api.execution_arn.apply(lambda a: f"{a}/*/*"), opts=child)
        self.url = self.api.api_endpoint
        self.register_outputs({"url": self.api.api_endpoint, "api_id": self.api.id,
                               "routes": list(self.routes)})
