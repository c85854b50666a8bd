"""The embedded local cloud: moto as an HTTP server in this process (DynamoDB in a forked one, see ``table_process``),
deploying a synthesized CDK app.

``deploy`` does what ``cdk deploy`` does against a bootstrapped account: it
uploads the cloud assembly's file assets to the bootstrap bucket and creates the
stack from the synthesized template. The Lambda functions then run their real
handler code (see ``lambda_runtime``) and the state machines are executed by
moto's ASL interpreter, so the very artefacts ``cdk deploy`` ships are what runs.
"""

import functools
import io
import json
import logging
import os
import re
import socket
import tempfile
import time
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import boto3
from botocore.exceptions import ClientError
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.utils import get_backend as lambda_backend
from moto.core.config import default_user_config

from saga.localcloud import moto_patches
from saga.localcloud.api_gateway import ApiGatewayMiddleware
from saga.localcloud.interpreters import Interpreter, interpreter_for
from saga.localcloud.lambda_runtime import LambdaRuntime
from saga.localcloud.table_process import DynamoDBForwarder, TableProcess, refuse_lambdas

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
BOOTSTRAP_QUALIFIER = "hnb659fds"  # the CDK's default bootstrap qualifier
DEPLOY_TIMEOUT_SECONDS = 120
# How long a DynamoDB transaction is in progress, holding its items against other writers (see ``LocalCloud``).
TRANSACTION_WINDOW_SECONDS = 0.005
# The public SSM parameter AWS keeps each Powertools for AWS Lambda (Python) layer's ARN in.
_POWERTOOLS_PARAMETER = re.compile(
    r"/aws/service/powertools/python/(?P<arch>x86_64|arm64)/python(?P<python>\d+\.\d+)/(?P<version>[\w.-]+)"
)
_POWERTOOLS_STAND_IN_NOTE = (
    "A local stand-in for the Powertools for AWS Lambda layer that AWS publishes.\n"
    "The local cloud's Lambda workers import Powertools from the project's virtual environment instead,\n"
    "where requirements-dev.txt pins the version the stack's layer parameter names.\n"
)
# Per-request lines, the interpreter's huge failure reprs, and CloudFormation's warnings about
# resources it only records (the dead-letter queue's TLS-only policy: AWS enforces it, moto does not).
_QUIET_LOGGERS = {"werkzeug": logging.ERROR, "moto": logging.ERROR, "moto.stepfunctions.parser": logging.CRITICAL}


class LocalCloudError(RuntimeError):
    """The local cloud could not start, or a stack could not be deployed into it."""


class LocalCloud:
    """A moto server on 127.0.0.1 that deploys CDK cloud assemblies and runs them for real.

    ``port=0`` picks a free port. ``wait_scale`` multiplies retry waits: Step Functions'
    Retry intervals, and the waits before Lambda and EventBridge retry an event they queued
    (e.g. 0.01 for fast tests). ``timeout_scale`` multiplies task, execution and Lambda timeouts;
    keep scaled timeouts well above the real latency of a handler call on a busy machine
    (a first call, which creates its boto3 client, can take a second).
    ``transaction_window`` is how long, in seconds, each DynamoDB TransactWriteItems is in progress
    once applied: meanwhile another transaction or a single-item write to one of its items is refused
    with DynamoDB's TransactionConflict, as on AWS, and ``transaction_conflicts()`` counts them.
    It is a real time, not scaled (AWS publishes no figure; a few milliseconds is a transaction's
    latency there); 0 turns conflicts off.
    Handlers' prints and logs go to ``<log_dir>/<function name>.log``, or nowhere. A function's worker
    process idle for ``keep_warm`` seconds is stopped, as Lambda reclaims idle environments.
    Use it as a context manager; only one can run per process.

    For the benchmark (``python -m bench``): ``invoker`` answers Lambda invocations instead
    of the real handlers, ``cache_definitions=False`` and ``reuse_clients=False`` turn off the
    interpreter's speedups (see ``moto_patches``), and ``on_execution_end(execution_arn)`` is
    called as each execution finishes.
    """

    def __init__(
        self,
        port: int = 0,
        wait_scale: float = 1.0,
        timeout_scale: float = 1.0,
        log_dir: Path | None = None,
        keep_warm: float = 60.0,
        *,
        transaction_window: float = TRANSACTION_WINDOW_SECONDS,
        invoker: moto_patches.Invoker | None = None,
        cache_definitions: bool = True,
        reuse_clients: bool = True,
        on_execution_end: moto_patches.ExecutionListener | None = None,
    ):
        if wait_scale <= 0 or timeout_scale <= 0 or keep_warm <= 0:
            raise ValueError("wait_scale, timeout_scale and keep_warm must be positive")
        self._port = port
        self._wait_scale = wait_scale
        self._timeout_scale = timeout_scale
        self._log_dir = log_dir
        self._keep_warm = keep_warm
        self._invoker = invoker
        self._patch_options: dict[str, Any] = {
            "cache_definitions": cache_definitions,
            "reuse_clients": reuse_clients,
            "on_execution_end": on_execution_end,
        }
        self._send_faults = moto_patches.SendFaults()
        self._transactions = moto_patches.TransactionHolds(transaction_window)
        self._background = moto_patches.BackgroundWork()
        self._exit = ExitStack()
        self.endpoint_url = ""  # every service's, DynamoDB's forwarded
        self.dynamodb_endpoint_url = ""  # DynamoDB's own process (see ``table_process``)
        self._runtime: LambdaRuntime | None = None
        self._tables = TableProcess(self._patched_for_tables, self._transactions)
        self.interpreters: set[Interpreter] = set()  # what runs the deployed functions (see ``interpreters``)

    def __enter__(self) -> "LocalCloud":
        moto_patches.refuse_a_second_cloud()
        with self._exit as starting:
            workdir = Path(starting.enter_context(tempfile.TemporaryDirectory(prefix="localcloud-")))
            self._quiet_logs(starting)
            self._configure_moto(starting)
            # DynamoDB's own process, forked before this cloud starts a thread (see ``table_process``).
            starting.enter_context(self._tables)
            self.dynamodb_endpoint_url = self._tables.endpoint_url
            port = self._start_server(starting)
            self.endpoint_url = f"http://127.0.0.1:{port}"
            # moto's Step Functions interpreter calls Lambda, SQS, DynamoDB at http://localhost:$MOTO_PORT.
            self._set_env(starting, "MOTO_PORT", str(port))
            runtime = LambdaRuntime(
                workdir,
                self.endpoint_url,
                self.dynamodb_endpoint_url,
                self._wait_scale,
                self._timeout_scale,
                self._log_dir,
                self._background,
                self._keep_warm,
            )
            invoker = self._invoker or runtime.invoke
            self._runtime = None if self._invoker else runtime
            starting.enter_context(
                moto_patches.applied(
                    invoker,
                    self._wait_scale,
                    self._timeout_scale,
                    self._send_faults,
                    self._transactions,
                    self._background,
                    mirror_tables_in=self._tables.mirror,
                    **self._patch_options,
                )
            )
            starting.callback(runtime.close)
            self._reset()  # a clean account, whatever an earlier cloud or mock in this process left
            starting.callback(self._reset)
            self._exit = starting.pop_all()
        return self

    def __exit__(self, *exc_info) -> None:
        self._exit.close()

    def client(self, service: str):
        """A boto3 client bound to the local cloud (region us-east-1, dummy credentials); DynamoDB's calls the
        process that serves it."""
        return boto3.client(
            service,
            endpoint_url=self.dynamodb_endpoint_url if service == "dynamodb" else self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def warm(self, function_arns: Iterable[str]) -> None:
        """Start a worker for each function in the background and return at once, as provisioned concurrency
        has environments initialized before the first request: that request then starts warm. Raises
        LocalCloudError, and warms none, if one of them does not exist."""
        backend = lambda_backend(ACCOUNT, REGION)  # the one moto's Lambda API serves
        try:
            functions = [backend.get_function(arn) for arn in function_arns]
        except LambdaClientError as error:
            raise LocalCloudError(f"no function to warm: {error.message}") from None
        if self._runtime is not None:
            for function in functions:
                self._runtime.warm(function)

    def wait_until_idle(self, timeout: float = 60) -> None:
        """Wait until nothing runs in the background: no EventBridge delivery to a function and no asynchronous
        Lambda invocation, their retries' waits included. A test aid: once idle, all that the events of a
        choreographed booking set off, redeliveries too, has landed. Raises TimeoutError after ``timeout`` s."""
        if not self._background.wait_until_done(timeout):
            raise TimeoutError(f"the local cloud was still busy in the background after {timeout} s")

    def forget_execution(self, execution_arn: str) -> None:
        """Let Step Functions forget a closed execution, as AWS does when its history's retention ends."""
        moto_patches.forget_execution(ACCOUNT, REGION, execution_arn)

    def time_out_execution(self, execution_arn: str) -> None:
        """A test aid: time a running execution out now, through the path its state machine's TimeoutSeconds
        running out takes (TIMED_OUT, ExecutionTimedOut last in its history, the task in flight abandoned),
        for a timeout at a moment the test chooses. Raises ValueError if the execution is not running."""
        moto_patches.time_out_execution(ACCOUNT, REGION, execution_arn)

    def fail_sends(self, queue_url: str, count: int) -> None:
        """A test aid for an SQS outage: the next ``count`` SendMessage requests to the queue, whoever makes them
        (a Step Functions task, a handler's SDK, which retries), fail with SQS's server error
        (ServiceUnavailable, HTTP 503); later ones go through. Replaces what was left of an earlier count."""
        self._send_faults.fail(queue_url, count)

    def clear_faults(self) -> None:
        """End every outage ``fail_sends`` started."""
        self._send_faults.clear()

    @property
    def transaction_window(self) -> float:
        """Seconds each DynamoDB transaction is in progress, holding its items; settable (0 turns conflicts off)."""
        return self._tables.transaction_window

    @transaction_window.setter
    def transaction_window(self, seconds: float) -> None:
        self._transactions.window = seconds  # checked here, where the error keeps its type; this copy kept in step
        self._tables.transaction_window = seconds

    def transaction_conflicts(self) -> dict[str, int]:
        """The DynamoDB requests refused so far because a transaction was in progress on one of their items, by
        operation: ``TransactWriteItems`` (cancelled with reason TransactionConflict), ``PutItem``, ``UpdateItem``
        and ``DeleteItem`` (TransactionConflictException)."""
        return self._tables.refused()

    def metric_total(self, name: str) -> float:
        """The sum of a metric the functions have published so far, as CloudWatch would add it up: the records in
        embedded metric format their logs carry (a metric added several times in one invocation is a list).
        Only a local cloud with a ``log_dir`` keeps them."""
        if self._log_dir is None:
            raise RuntimeError("metrics are read from the functions' logs: start the local cloud with a log_dir")
        total = 0.0
        for log in self._log_dir.glob("*.log"):
            for line in log.read_text(encoding="utf-8").splitlines():
                if line.startswith("{") and f'"{name}"' in line:
                    record = json.loads(line)
                    if "_aws" in record and name in record:
                        value = record[name]
                        total += sum(value) if isinstance(value, list) else value
        return total

    def _call_lambda(self, function_arn: str, event: dict) -> tuple[str | None, bytes]:
        """How the local API Gateway invokes an integration: the Lambda API, like any other caller."""
        response = self._lambda.invoke(FunctionName=function_arn, Payload=json.dumps(event))
        return response.get("FunctionError"), response["Payload"].read()

    @functools.cached_property
    def _lambda(self):
        return self.client("lambda")

    def deploy(self, assembly_dir: Path, stack_name: str) -> dict[str, str]:
        """Deploy one stack of a synthesized cloud assembly (a cdk.out directory); return its outputs.

        Before the stack, what `cdk bootstrap` leaves in an account, and the public layers AWS publishes
        that the template names (see ``_publish_aws_layers``). After it, ``interpreters`` holds what runs
        the functions of each runtime the stack declares.
        """
        assembly_dir = Path(assembly_dir)
        template_file, assets_file = _stack_files(assembly_dir, stack_name)
        template = (assembly_dir / template_file).read_text()
        parsed = json.loads(template)
        self._bootstrap()
        self._publish_aws_layers(parsed)
        if assets_file:
            self._upload_assets(assembly_dir, assets_file)
        cloudformation = self.client("cloudformation")
        try:
            cloudformation.create_stack(
                StackName=stack_name,
                TemplateBody=template,
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        except ClientError as error:
            raise LocalCloudError(f"could not create stack {stack_name}: {error}") from error
        stack = self._wait_for(cloudformation, stack_name)
        self.interpreters |= {
            interpreter_for(resource["Properties"]["Runtime"])
            for resource in parsed["Resources"].values()
            if resource["Type"] == "AWS::Lambda::Function" and "Runtime" in resource.get("Properties", {})
        }
        return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}

    def _start_server(self, starting: ExitStack) -> int:
        taken = LocalCloudError(
            f"cannot start the local cloud on 127.0.0.1:{self._port}: the port is taken; "
            "pick another port, or 0 for any free one"
        )
        if self._port and not _port_is_free(self._port):
            raise taken  # checked first: werkzeug reports a taken port by printing to stderr
        server = moto_patches.MotoServer(
            ip_address="127.0.0.1",
            port=self._port,
            verbose=False,
            middleware=lambda app: ApiGatewayMiddleware(
                DynamoDBForwarder(app, self.dynamodb_endpoint_url), ACCOUNT, REGION, self._call_lambda
            ),
        )
        server.start()
        if server.bind_failed:
            raise taken
        starting.callback(server.stop)
        return server.get_host_and_port()[1]

    def _patched_for_tables(self):
        """The patches the DynamoDB process serves with: the same as this process's, Lambda aside."""
        return moto_patches.applied(
            refuse_lambdas,
            self._wait_scale,
            self._timeout_scale,
            moto_patches.SendFaults(),
            self._transactions,
            moto_patches.BackgroundWork(),
        )

    @staticmethod
    def _configure_moto(starting: ExitStack) -> None:
        """Execute state machines; run Lambdas without Docker (through the patched simple backend)."""
        config = cast(dict[str, Any], default_user_config)  # a TypedDict moto reads its settings from
        saved = dict(config)
        config.update({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})

        def restore() -> None:
            config.clear()
            config.update(saved)

        starting.callback(restore)

    @staticmethod
    def _set_env(starting: ExitStack, name: str, value: str) -> None:
        saved = os.environ.get(name)
        os.environ[name] = value

        def restore() -> None:
            if saved is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = saved

        starting.callback(restore)

    @staticmethod
    def _quiet_logs(starting: ExitStack) -> None:
        for name, level in _QUIET_LOGGERS.items():
            logger = logging.getLogger(name)
            starting.callback(logger.setLevel, logger.level)
            logger.setLevel(level)
        starting.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto", category=UserWarning)

    def _reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def _bootstrap(self) -> None:
        """What `cdk bootstrap` leaves in an account that a CDK template relies on."""
        self.client("ssm").put_parameter(
            Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value="30", Type="String", Overwrite=True
        )
        self.client("s3").create_bucket(Bucket=_bootstrap_bucket())

    def _publish_aws_layers(self, template: dict) -> None:
        """What AWS publishes for Powertools for AWS Lambda: a layer version, and its ARN in a public SSM parameter.

        The template finds the layer through an SSM-typed parameter whose default is that public path
        (``/aws/service/powertools/python/<arch>/python<x.y>/<version>``); without that parameter in its
        SSM, moto's CloudFormation cannot create the stack (CreateStack fails with a server error). Each
        such path gets the ARN of a stand-in layer of the name AWS uses, holding only a note: the local
        workers import Powertools from this project's environment, where requirements-dev.txt pins the
        same version. (moto 5.2.5's CloudFormation does not attach Layers to functions at all, so
        nothing else reads the ARN.)
        """
        for parameter in template.get("Parameters", {}).values():
            path = str(parameter.get("Default", ""))
            found = _POWERTOOLS_PARAMETER.fullmatch(path)
            if parameter.get("Type") != "AWS::SSM::Parameter::Value<String>" or not found:
                continue
            layer = self._lambda.publish_layer_version(
                LayerName=f"AWSLambdaPowertoolsPythonV3-python{found['python'].replace('.', '')}-{found['arch']}",
                Description=f"Local stand-in for Powertools for AWS Lambda (Python) {found['version']}",
                Content={"ZipFile": _zip_text("README.txt", _POWERTOOLS_STAND_IN_NOTE)},
                CompatibleRuntimes=[f"python{found['python']}"],
                CompatibleArchitectures=[found["arch"]],
            )
            moto_patches.put_public_parameter(ACCOUNT, REGION, path, layer["LayerVersionArn"])

    def _upload_assets(self, assembly_dir: Path, assets_file: str) -> None:
        """Upload each file asset as `cdk deploy` does: a directory zipped, under the key the template names."""
        s3 = self.client("s3")
        for asset in json.loads((assembly_dir / assets_file).read_text()).get("files", {}).values():
            source = assembly_dir / asset["source"]["path"]
            body = _zip(source) if asset["source"].get("packaging") == "zip" else source.read_bytes()
            for destination in asset["destinations"].values():
                bucket = _substitute(destination["bucketName"])
                s3.put_object(Bucket=bucket, Key=_substitute(destination["objectKey"]), Body=body)

    @staticmethod
    def _wait_for(cloudformation, stack_name: str) -> dict:
        deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
        while True:
            stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
            status = stack["StackStatus"]
            if status == "CREATE_COMPLETE":
                return stack
            if not status.endswith("_IN_PROGRESS"):
                raise LocalCloudError(f"stack {stack_name} ended {status}: {_failures(cloudformation, stack_name)}")
            if time.monotonic() > deadline:
                raise LocalCloudError(f"stack {stack_name} still {status} after {DEPLOY_TIMEOUT_SECONDS} s")
            time.sleep(0.1)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stack_files(assembly_dir: Path, stack_name: str) -> tuple[str, str | None]:
    """The stack's template and asset manifest, as the assembly's manifest.json lists them."""
    manifest_path = assembly_dir / "manifest.json"
    if not manifest_path.is_file():
        raise LocalCloudError(f"{assembly_dir} is not a cloud assembly (no manifest.json): synthesize the app first")
    artifacts = json.loads(manifest_path.read_text())["artifacts"]
    stacks = {
        artifact["properties"].get("stackName", artifact_id): artifact
        for artifact_id, artifact in artifacts.items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    if stack_name not in stacks:
        raise LocalCloudError(f"no stack {stack_name} in {assembly_dir}; it has: {', '.join(sorted(stacks)) or 'none'}")
    stack = stacks[stack_name]
    asset_manifests = [
        artifacts[dependency]["properties"]["file"]
        for dependency in stack.get("dependencies", [])
        if artifacts.get(dependency, {}).get("type") == "cdk:asset-manifest"
    ]
    return stack["properties"]["templateFile"], asset_manifests[0] if asset_manifests else None


def _bootstrap_bucket() -> str:
    return f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{ACCOUNT}-{REGION}"


def _substitute(text: str) -> str:
    placeholders = {"${AWS::AccountId}": ACCOUNT, "${AWS::Region}": REGION, "${AWS::Partition}": "aws"}
    for placeholder, value in placeholders.items():
        text = text.replace(placeholder, value)
    return text


def _zip_text(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def _zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _failures(cloudformation, stack_name: str) -> str:
    """The status reasons of the resources that failed, which say why a deploy failed."""
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    reasons = [
        f"{event['LogicalResourceId']} ({event['ResourceType']}): {event.get('ResourceStatusReason', 'no reason')}"
        for event in events
        if event["ResourceStatus"].endswith("_FAILED") and event["LogicalResourceId"] != stack_name
    ]
    return "; ".join(reasons) or "no resource reported a failure"
