"""`mlops-kit emulate`: the AWS code path on one machine.

moto runs in server mode on localhost; the topology is rendered into it through boto3 (buckets
with S3->SQS notifications, queues with dead-letter queues and redrive, the table, the topic);
SQS messages are delivered to the real handlers in functions/ the way the Lambda SQS event
source does (batches, batchItemFailures, visibility timeout, receive count, DLQ); the monitor
runs on its schedule; a stdlib HTTP gateway turns requests into HTTP API (payload 2.0) events
for the serve handler. Unmodified clients (AWS CLI, boto3, curl) drive it.

With `enforce_iam`, moto checks every request once the resources exist: each function runs
under an IAM user holding the policy the Pulumi program renders for its role (emulate.iam), and
clients must use the operator's keys printed at start.

The pieces (provision, SqsPump, Gateway) are also what the end-to-end tests use under moto.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from mlops_kit.adapters.local.factory import process_runner
from mlops_kit.adapters.local.process_runner import ProcessRunner
from mlops_kit.bootstrap import use_job_runner
from mlops_kit.emulate.aws_events import rate_seconds, schedule_event
from mlops_kit.emulate.aws_resources import ACCOUNT, TEST_CREDENTIALS, Resources, provision
from mlops_kit.emulate.batch import NO_DOCKER, forward_process_jobs, provision_batch
from mlops_kit.emulate.gateway import free_port, make_gateway
from mlops_kit.emulate.iam import ADMIN, acting, create_identities, enforce_on_server
from mlops_kit.emulate.lambda_functions import context_for, functions_dir, load_function, reset_functions
from mlops_kit.emulate.pumps import SqsPump
from mlops_kit.settings import Settings
from mlops_kit.topology import Topology, default_topology

log = logging.getLogger("mlops_kit.emulate.emulator")


class Emulator:
    def __init__(self, *, host: str = "127.0.0.1", gateway_port: int = 0,
                 monitor_every: float | None = None, retry_after: int = 5,
                 prefix: str = "mlops-kit", region: str = "us-east-1",
                 functions: str | Path | None = None, topology: Topology | None = None,
                 enforce_iam: bool = False, workspace: str | Path | None = None) -> None:
        self.host, self.gateway_port, self.prefix, self.region = host, gateway_port, prefix, region
        # "AWS Batch" included: large trainings run as separate processes (emulate/batch.py)
        self.topology = topology or default_topology(batch=True)
        # where the process engine keeps its jobs (state, logs); a fresh folder by default
        self.workspace = Path(workspace or tempfile.mkdtemp(prefix="mlops-kit-emulate-"))
        sched = self.topology.schedules[0]
        self.monitor_every = monitor_every or rate_seconds(sched.expression)
        self.retry_after = retry_after
        self.functions = functions_dir(functions)
        self.enforce_iam = enforce_iam
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Resources:
        from moto.server import ThreadedMotoServer

        from mlops_kit.adapters.aws import acting_as, clear_clients, client

        for k, v in TEST_CREDENTIALS.items():
            os.environ.setdefault(k, v)
        port = free_port(self.host)
        self.moto = ThreadedMotoServer(ip_address=self.host, port=port, verbose=False)
        self.moto.start()
        endpoint = f"http://{self.host}:{port}"
        if self.topology.batch_jobs:  # moto's Batch would start Docker containers
            from moto.core.config import default_user_config

            default_user_config["batch"] = {"use_docker": False}
        clear_clients()
        connect = {"region": self.region, "endpoint_url": endpoint}
        self.client = lambda s: client(s, **connect)
        res = provision(self.client, self.topology, prefix=self.prefix, region=self.region,
                        endpoint_url=endpoint)
        provision_batch(self.client, self.topology, res, prefix=self.prefix)
        if self.enforce_iam:
            res.identities = create_identities(self.client("iam"), self.topology,
                                               res.policy_arns(), prefix=self.prefix)
            enforce_on_server(endpoint)
            admin = res.identities[ADMIN]
            self.client = lambda s: _client_as(admin, s, connect)  # the emulator's own calls
        os.environ.update(res.env())
        if self.topology.batch_jobs:  # the train function submits to the process engine
            os.environ.update({"MLOPSKIT_JOB_RUNNER": "process",
                               "MLOPSKIT_WORKSPACE": str(self.workspace)})
            # one process engine per batch job (each under its own role's keys)
            self.job_runners = {job.name: self._process_engine(res, job.name, i)
                                for i, job in enumerate(self.topology.batch_jobs)}
            self.job_runner = self.job_runners[self.topology.batch_jobs[0].name]
            use_job_runner(lambda settings, job: self.job_runners.get(job))
        reset_functions()
        ident = res.identities.get
        handlers = {f.name: acting(ident(f.name), load_function(f.name, self.functions).handler)
                    for f in self.topology.functions}
        for q in self.topology.queues:
            with acting_as(ident(q.consumer)):  # the event source mapping uses the consumer's role
                sqs = client("sqs", **connect)
            pump = SqsPump(sqs, res.queue_urls[q.name], res.queue_arns[q.name],
                           handlers[q.consumer], batch_size=q.batch_size,
                           region=self.region, retry_after=self.retry_after,
                           context=functools.partial(context_for, self.topology, q.consumer),
                           control=self.client("sqs"))
            self._spawn(f"sqs-{q.name}", self._pump_loop, pump)
        http_fn = self.topology.http.function
        self.gateway = make_gateway(handlers[http_fn],
                                    lambda: context_for(self.topology, http_fn),
                                    self.host, self.gateway_port)
        self._spawn("gateway", self.gateway.serve_forever)
        sched = self.topology.schedules[0]
        self._spawn("schedule", self._schedule_loop, handlers[sched.function], sched.function)
        if res.batch_job_queue:
            self._spawn("batch-events", self._batch_loop, res.batch_job_queue)
        res.inference_url = f"http://{self.host}:{self.gateway.server_address[1]}"
        self.resources = res
        return res

    def _spawn(self, name: str, target: Callable, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _pump_loop(self, pump: SqsPump) -> None:
        while not self.stop_event.is_set():
            try:
                if not pump.poll_once(wait_seconds=1):
                    self.stop_event.wait(0.2)
            except Exception:  # noqa: BLE001 - keep polling, like the event source mapping
                log.exception("polling %s failed", pump.url)
                self.stop_event.wait(1)

    def _schedule_loop(self, handler: Callable, function: str) -> None:
        rule = f"arn:aws:events:{self.region}:{ACCOUNT}:rule/{self.prefix}-{function}"
        while not self.stop_event.wait(self.monitor_every):
            try:
                out = handler(schedule_event(rule, self.region),
                              context_for(self.topology, function))
                log.info("%s: %s", function, out)
            except Exception:  # noqa: BLE001 - a failed run is retried on the next tick
                log.exception("scheduled %s failed", function)

    def _process_engine(self, res: Resources, name: str, index: int) -> ProcessRunner:
        """AWS Batch's stand-in for one job definition: each job a separate process, under the
        job role's keys when IAM is enforced (as a Batch task runs under its job role). The
        first (training) keeps <workspace>/jobs; the others a folder of their own, so each
        engine reports only its own jobs."""
        job = res.identities.get(name)
        keys = {} if job is None else {  # an IAM user's keys carry no session token
            "AWS_ACCESS_KEY_ID": job.access_key_id,
            "AWS_SECRET_ACCESS_KEY": job.secret_access_key, "AWS_SESSION_TOKEN": ""}
        runner = process_runner(Settings(), keys)  # the workspace and limits set above
        if index:
            runner.root = runner.root.with_name(f"jobs-{name}")
        return runner

    def _batch_loop(self, queue_arn: str) -> None:
        """EventBridge's side of Batch: each job's final state becomes a state change event."""
        while not self.stop_event.wait(0.5):
            try:
                for runner in self.job_runners.values():
                    forward_process_jobs(runner, self.client("events"), queue_arn=queue_arn,
                                         region=self.region)
            except Exception:  # noqa: BLE001 - reported again on the next tick
                log.exception("forwarding batch job states failed")

    def stop(self) -> None:
        self.stop_event.set()
        if hasattr(self, "job_runner"):
            use_job_runner(None)
        if hasattr(self, "gateway"):
            self.gateway.shutdown()
            self.gateway.server_close()
        for t in self._threads:
            if t.name != "gateway":
                t.join(timeout=5)
        if hasattr(self, "moto"):
            self.moto.stop()


def _client_as(identity: Any, service: str, connect: dict[str, Any]) -> Any:
    from mlops_kit.adapters.aws import acting_as, client

    with acting_as(identity):
        return client(service, **connect)


@contextmanager
def in_process(topology: Topology | None = None, *, prefix: str = "mlops-kit",
               region: str = "us-east-1", extra_env: dict[str, str] | None = None,
               enforce_iam: bool = False,
               moto_config: dict[str, Any] | None = None) -> Iterator[Resources]:
    """The same resources under moto's in-process mock (tests, notebooks): the mock starts
    before any client, the handlers see MLOPSKIT_* for it, everything is restored after.

    With `enforce_iam`, moto checks every request once the resources exist; the environment's
    credentials are then the admin user's (the caller plays the operator) and
    `res.identities[<function>]` are the keys to invoke each handler under
    (`emulate.iam.acting`). A topology with batch jobs runs moto's Batch without Docker
    (emulate/batch.py)."""
    from moto import mock_aws
    from moto.core import enable_iam_authentication

    from mlops_kit.adapters.aws import clear_clients, client

    saved = dict(os.environ)
    os.environ.update({**TEST_CREDENTIALS, "AWS_DEFAULT_REGION": region})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clear_clients()
    try:
        if topology is not None and topology.batch_jobs:
            moto_config = {**NO_DOCKER, **(moto_config or {})}
        with mock_aws(config=moto_config):  # type: ignore[arg-type]
            topology = topology or default_topology()

            def regional(service: str) -> Any:
                return client(service, region=region)

            res = provision(regional, topology, prefix=prefix, region=region)
            provision_batch(regional, topology, res, prefix=prefix)
            if enforce_iam:
                res.identities = create_identities(client("iam", region=region), topology,
                                                   res.policy_arns(), prefix=prefix)
                admin = res.identities[ADMIN]
                os.environ.pop("AWS_SESSION_TOKEN", None)  # an IAM user's keys carry none
                os.environ.update({"AWS_ACCESS_KEY_ID": admin.access_key_id,
                                   "AWS_SECRET_ACCESS_KEY": admin.secret_access_key})
                clear_clients()
            os.environ.update({**res.env(), **(extra_env or {})})
            reset_functions()
            with enable_iam_authentication() if enforce_iam else nullcontext():
                yield res
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clear_clients()
        reset_functions()
