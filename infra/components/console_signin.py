"""Console sign-in on AWS (consoleAuth cognito | oidc): what lets a browser use /ui.

- The cookie key: an SSM Parameter Store SecureString under the stack's own KMS key. The stack
  creates it holding a placeholder (everyone refused) and never touches its value again
  (`ignore_changes`): `mlops-kit token --rotate` writes the real key, and rotates it. The key
  thus never sits in Pulumi state, an environment variable or the code.
- One role for the two functions below, allowed only `ssm:GetParameter` on that parameter and
  `kms:Decrypt` on that key through SSM (plus their own log groups).
- The sign-in function (`console_signin.handler`: `GET /ui/login`, `/ui/callback`) and
  the Lambda REQUEST authorizer (`console_signin.authorize`), both from the serve zip.
- With `cognito`: a user pool (admin-created users only, strong passwords), a public app client
  (authorization code + PKCE, callback `<api>/ui/callback`) and a hosted domain.

Routes are the API's job (infra/components/api.py): it asks this component for the sign-in
integration and the authorizer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.iam import assume_role_policy
from infra.components.tags import component_tags
from infra.config import ConsoleAuth

SSM_PLACEHOLDER = "unset: run mlops-kit token --rotate"  # adapters/aws/ssm.py PLACEHOLDER
# API Gateway caches an authorizer's answer per identity source for this long; 0 (off) makes
# a rotated key or an expired cookie count at once. HTTP APIs accept 0-3600.
AUTHORIZER_TTL_S = 0
IDENTITY_SOURCE = "$request.header.Cookie"
SIGN_IN_HANDLER = "console_signin.handler"
AUTHORIZER_HANDLER = "console_signin.authorize"
KEY_ENV = "MLOPSKIT_CONSOLE_KEY_PARAMETER"
ISSUER_ENV = "MLOPSKIT_CONSOLE_OIDC_ISSUER"
CLIENT_ENV = "MLOPSKIT_CONSOLE_OIDC_CLIENT_ID"


def signin_policy(parameter_arn: str, kms_key_arn: str, region: str,
                  log_group_arns: list[str]) -> dict[str, Any]:
    """The console functions' one policy: read the one parameter, decrypt with its key only
    when SSM asks (kms:ViaService), write their logs. Nothing else: not the buckets, not the
    table, not another parameter."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadCookieKey", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": parameter_arn},
        {"Sid": "DecryptCookieKey", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": kms_key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"}}},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"{arn}:*" for arn in log_group_arns]},
    ]}


def hosted_domain(prefix: str, api_id: str) -> str:
    """The hosted UI's prefix domain: lower-case letters, digits and hyphens, at most 63, and
    none of the reserved words aws, amazon, cognito (Cognito refuses them:
    docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-assign-domain-prefix.html).
    The API id makes it unique in the region."""
    base = re.sub(r"aws|amazon|cognito", "x", f"{prefix}-console".lower())
    base = re.sub(r"[^a-z0-9-]+", "-", base)[: 62 - len(api_id)].strip("-")
    return f"{base}-{api_id.lower()}"


@dataclass
class ConsoleSignInArgs:
    name_prefix: str
    mode: ConsoleAuth  # cognito | oidc
    region: str
    code: tuple[pulumi.Input[str], pulumi.Input[str], str]  # serve's zip: bucket, key, hash
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    log_retention_days: int = 30
    protect: bool = True
    api: aws.apigatewayv2.Api | None = None  # set by InferenceApi, which owns the API


class ConsoleSignIn(pulumi.ComponentResource):
    def __init__(self, name: str, args: ConsoleSignInArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:console:ConsoleSignIn", name, None, opts)
        if args.mode not in ("cognito", "oidc"):
            raise ValueError(f"console sign-in mode must be cognito or oidc, got {args.mode!r}")
        if args.api is None:
            raise ValueError("the console sign-in needs the API (InferenceApi passes it)")
        api = args.api
        child = pulumi.ResourceOptions(parent=self)
        p, tags = args.name_prefix, component_tags("console")
        callback = api.api_endpoint.apply(lambda e: f"{e}/ui/callback")

        if args.mode == "cognito":
            pool = aws.cognito.UserPool(
                f"{p}-console-users", admin_create_user_config={
                    "allow_admin_create_user_only": True},
                password_policy={"minimum_length": 12, "require_lowercase": True,
                                 "require_numbers": True, "require_symbols": False,
                                 "require_uppercase": True,
                                 "temporary_password_validity_days": 3},
                auto_verified_attributes=["email"], username_attributes=["email"],
                deletion_protection="ACTIVE" if args.protect else "INACTIVE", tags=tags,
                opts=child)
            client = aws.cognito.UserPoolClient(
                f"{p}-console-client", user_pool_id=pool.id, generate_secret=False,
                allowed_oauth_flows=["code"], allowed_oauth_flows_user_pool_client=True,
                allowed_oauth_scopes=["openid", "email"], callback_urls=[callback],
                supported_identity_providers=["COGNITO"], prevent_user_existence_errors="ENABLED",
                id_token_validity=60, token_validity_units={"id_token": "minutes"}, opts=child)
            # hosted-UI domains are global per region: the API id makes this one unique
            self.domain = aws.cognito.UserPoolDomain(
                f"{p}-console-domain", user_pool_id=pool.id,
                domain=api.id.apply(lambda i: hosted_domain(p, i)), opts=child)
            issuer: pulumi.Input[str] = pool.id.apply(
                lambda i: f"https://cognito-idp.{args.region}.amazonaws.com/{i}")
            client_id: pulumi.Input[str] = client.id
            self.user_pool_id: pulumi.Output[str] | None = pool.id
        else:
            issuer, client_id, self.user_pool_id = args.oidc_issuer or "", \
                args.oidc_client_id or "", None

        key = aws.kms.Key(f"{p}-console-key", description="mlops-kit console cookie key (SSM)",
                          enable_key_rotation=True, deletion_window_in_days=7, tags=tags,
                          opts=child)
        self.parameter = aws.ssm.Parameter(
            f"{p}-console-cookie-key", name=f"/{p}/console/cookie-key", type="SecureString",
            key_id=key.arn, value=pulumi.Output.secret(SSM_PLACEHOLDER),
            description="console session cookie key: set and rotated by mlops-kit token --rotate",
            tags=tags, opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]))

        names = {"signin": f"{p}-console-signin", "authorizer": f"{p}-console-authorizer"}
        logs = {k: aws.cloudwatch.LogGroup(f"{n}-logs", name=f"/aws/lambda/{n}",
                                           retention_in_days=args.log_retention_days, tags=tags,
                                           opts=child) for k, n in names.items()}
        role = aws.iam.Role(f"{p}-console-role", assume_role_policy=assume_role_policy(),
                            description="mlops-kit console sign-in: the cookie key only",
                            tags=tags, opts=child)
        policy = aws.iam.RolePolicy(
            f"{p}-console-policy", role=role.id, policy=pulumi.Output.all(
                self.parameter.arn, key.arn, logs["signin"].arn, logs["authorizer"].arn,
            ).apply(lambda a: json.dumps(signin_policy(a[0], a[1], args.region, [a[2], a[3]]))),
            opts=child)
        env = aws.lambda_.FunctionEnvironmentArgs(variables={
            KEY_ENV: self.parameter.name, "MLOPSKIT_REGION": args.region, ISSUER_ENV: issuer,
            CLIENT_ENV: client_id})
        bucket, s3_key, code_hash = args.code
        self.functions: dict[str, aws.lambda_.Function] = {}
        for kind, handler, memory in (("signin", SIGN_IN_HANDLER, 256),
                                      ("authorizer", AUTHORIZER_HANDLER, 256)):
            self.functions[kind] = aws.lambda_.Function(
                names[kind], name=names[kind], package_type="Zip", runtime="python3.12",
                handler=handler, s3_bucket=bucket, s3_key=s3_key, source_code_hash=code_hash,
                role=role.arn, memory_size=memory, timeout=10, architectures=["x86_64"],
                environment=env, tags=tags,
                logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                    log_format="JSON", log_group=logs[kind].name),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, logs[kind]]))

        self.integration = aws.apigatewayv2.Integration(
            f"{p}-api-console-signin", api_id=api.id, integration_type="AWS_PROXY",
            integration_uri=self.functions["signin"].arn, payload_format_version="2.0",
            opts=child)
        self.authorizer = aws.apigatewayv2.Authorizer(
            f"{p}-api-console-cookie", api_id=api.id, authorizer_type="REQUEST",
            authorizer_uri=self.functions["authorizer"].invoke_arn,
            authorizer_payload_format_version="2.0", enable_simple_responses=True,
            identity_sources=[IDENTITY_SOURCE],
            authorizer_result_ttl_in_seconds=AUTHORIZER_TTL_S, opts=child)
        # the authorizer is invoked as <execution arn>/authorizers/<id>, routes as /<stage>/<route>
        for kind, suffix in (("signin", "/*/*"), ("authorizer", "/authorizers/*")):
            aws.lambda_.Permission(
                f"{p}-api-invoke-console-{kind}", action="lambda:InvokeFunction",
                function=self.functions[kind].name, principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(api.execution_arn, suffix), opts=child)
        self.issuer, self.client_id = issuer, client_id
        self.register_outputs({"cookie_key_parameter": self.parameter.name, "issuer": issuer,
                               "client_id": client_id})
