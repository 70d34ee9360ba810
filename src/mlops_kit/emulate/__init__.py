"""The clouds on one machine: moto (server or in-process) with the topology rendered into it,
the Lambda SQS event source (pumps), an HTTP API gateway and the schedule (AWS); the tests and
`mlops-kit emulate` / `mlops-kit invoke` use the same pieces. Azurite, the Azure Storage
emulator, is installed and run by azurite.py (imported on its own: it needs node + npm)."""

from mlops_kit.emulate.aws_events import http_api_event, schedule_event, sqs_record
from mlops_kit.emulate.aws_resources import ACCOUNT, TEST_CREDENTIALS, Resources, provision
from mlops_kit.emulate.emulator import Emulator, in_process
from mlops_kit.emulate.gateway import free_port, make_gateway
from mlops_kit.emulate.iam import ADMIN, acting, create_identities, moto_policy
from mlops_kit.emulate.lambda_functions import (
    LambdaContext,
    context_for,
    functions_dir,
    load_function,
    reset_functions,
)
from mlops_kit.emulate.pumps import SqsPump

__all__ = ["ACCOUNT", "ADMIN", "TEST_CREDENTIALS", "Emulator", "LambdaContext", "Resources",
           "SqsPump", "acting", "context_for", "create_identities", "free_port", "functions_dir",
           "http_api_event", "in_process", "load_function", "make_gateway", "moto_policy",
           "provision", "reset_functions", "schedule_event", "sqs_record"]
