"""The local stack: MiniStack, the two provider simulators, and the real template.yaml deployed
into MiniStack with `sam build` + `sam deploy`. No AWS account and no Docker needed.

`python -m local.stack` (what `make run` calls) starts it all, prints the API URL, a key and a
curl, writes .tuma/local.env, and stays in the foreground until Ctrl-C, which stops every process
it started. The end-to-end tests start the same stack on other ports through `LocalStack`."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".tuma"
MINISTACK_BIN = STATE_DIR / "ministack-venv" / "bin" / "ministack"
REGION = "us-east-1"
STACK_NAME = "tuma"
STAGE = "local"
TENANT = "local-dev"
# The sender ids (`from`) the local stack's keys may use: those of the README's examples, the
# end-to-end tests, the fault bench and 254sms's default. Another is a 403 sender_id_not_allowed (docs/security.md).
SENDER_IDS = ("TUMA", "MYSHOP", "SAYARADIUS", "SHOP", "FAULTS", "254sms")


class StackError(RuntimeError):
    """A prerequisite or a step failed; the message says what to do."""


@dataclass
class Ports:
    ministack: int = 4566
    sms254: int = 4701
    sayasms: int = 4702


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_port_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"Port {port} ({what}) is already in use. Stop whatever holds it "
                f"(`ss -ltnp 'sport = :{port}'` shows it; an earlier `make run` perhaps) and try again."
            ) from None


def _wait_for(url: str, seconds: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting; see its log above.")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise StackError(f"{what} did not answer at {url} within {seconds:.0f} s.")


@dataclass
class LocalStack:
    ports: Ports = field(default_factory=Ports)
    log_dir: Path | None = None  # None: children's output goes to this console, prefixed
    processes: list[subprocess.Popen] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    api_url: str = ""
    api_key: str = ""
    credentials: dict = field(default_factory=dict)  # the simulators' (and SSM's) provider keys
    # Extra template parameters (e.g. the e2e tests' short ExpireAfterSeconds).
    parameters: dict = field(default_factory=dict)
    webhook_token: str = ""
    signing_secret: str = ""  # TENANT's, for verifying its callbacks
    simulators: dict = field(default_factory=dict)  # name -> its process, for stopping one (an outage)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.ministack}"

    @property
    def sms254_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sms254}"

    @property
    def sayasms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sayasms}"

    def aws_env(self) -> dict:
        """Environment that points every AWS client at MiniStack, never at AWS."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "SAM_CLI_TELEMETRY": "0"}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "LocalStack":
        self._check_prerequisites()
        self.credentials = credentials = {
            "254sms/username": "tuma-local", "254sms/api_key": secrets.token_hex(16),
            "sayasms/api_key": "sk_test_" + secrets.token_hex(16)}
        self.webhook_token = secrets.token_urlsafe(32)
        try:
            # MiniStack unpacks code and layer (~84 MB) per execution environment and leaves those
            # of workers it killed at their timeout: a temp folder of the stack's own, removed at stop,
            # so that a long or loaded run cannot fill the disk.
            self._tmp = Path(tempfile.mkdtemp(prefix="tuma-ministack-"))
            # Through local/ministack_main.py: MiniStack plus the stream record of a PartiQL INSERT.
            ministack = [str(MINISTACK_BIN.parent / "python"), str(ROOT / "local" / "ministack_main.py")]
            self._spawn("ministack", ministack, {
                "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.ports.ministack), "LOG_LEVEL": "WARNING",
                # Lambdas run with MiniStack's own interpreter: keep our venv's packages off their path.
                "PYTHONPATH": "", "TMPDIR": str(self._tmp)})
            for name in ("254sms", "sayasms"):
                self._spawn_simulator(name)
            _wait_for(f"{self.endpoint}/_ministack/health", 60, "MiniStack", self.processes[0])
            for name in ("254sms", "sayasms"):
                self._wait_for_simulator(name)
            self._put_credentials(credentials)
            self._deploy()
            self.api_key = self.create_api_key(TENANT)
            self.signing_secret = self.tenant_signing_secret(TENANT)
            self._write_env_file()
        except BaseException:
            self.stop()
            raise
        return self

    # --- a provider outage: one simulator stopped (connections refused) and started again ----

    def stop_simulator(self, name: str) -> None:
        proc = self.simulators.pop(name)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        self.processes.remove(proc)

    def start_simulator(self, name: str) -> None:
        """Started again on its port, with its records and settings fresh."""
        self._spawn_simulator(name)
        self._wait_for_simulator(name)

    def _spawn_simulator(self, name: str) -> None:
        module, port = {"254sms": ("sms254", self.ports.sms254), "sayasms": ("sayasms", self.ports.sayasms)}[name]
        sim_env = {"SIM_254SMS_USERNAME": self.credentials["254sms/username"],
                   "SIM_254SMS_API_KEY": self.credentials["254sms/api_key"],
                   "SIM_SAYASMS_API_KEY": self.credentials["sayasms/api_key"]}
        self._spawn(f"{name}-sim", [sys.executable, "-m", f"local.simulators.{module}", "--port", str(port)], sim_env)
        self.simulators[name] = self.processes[-1]

    def _wait_for_simulator(self, name: str) -> None:
        url = self.sms254_url if name == "254sms" else self.sayasms_url
        label = "the 254sms simulator" if name == "254sms" else "the SayaSMS simulator"
        _wait_for(f"{url}/_sim/requests", 20, label, self.simulators[name])

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.processes.clear()
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- steps -----------------------------------------------------------------------------

    def _check_prerequisites(self) -> None:
        if not MINISTACK_BIN.exists():
            raise StackError(f"MiniStack is not installed at {MINISTACK_BIN}: run `make run` (it installs it).")
        if shutil.which("python3.13", path=self._path()) is None:
            raise StackError("`sam build` needs Python 3.13 on PATH (the template's runtime is python3.13). "
                             "Install it (e.g. `pyenv install 3.13`) and run `make run` again.")
        if shutil.which("sam", path=self._path()) is None:
            raise StackError("aws-sam-cli is not installed in .venv: run `make run` (it installs it).")
        for port, what in ((self.ports.ministack, "MiniStack"), (self.ports.sms254, "254sms simulator"),
                           (self.ports.sayasms, "SayaSMS simulator")):
            _check_port_free(port, what)

    def _path(self) -> str:
        return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

    def _spawn(self, name: str, argv: list[str], extra_env: dict) -> None:
        env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "a")
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        else:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, text=True)
            threading.Thread(target=_relay, args=(name, proc), daemon=True).start()
        self.processes.append(proc)

    def _run(self, argv: list[str], what: str) -> None:
        env = {**os.environ, **self.aws_env(), "PATH": self._path()}
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{what} failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")

    def _deploy(self) -> None:
        _say("sam build ...")
        self._run(["sam", "build", "--config-env", STAGE], "sam build")
        _say("sam deploy into MiniStack ...")
        overrides = [f"Stage={STAGE}", f"Sms254BaseUrl={self.sms254_url}", f"SayaSmsBaseUrl={self.sayasms_url}",
                     # SayaSMS reports to the webhook's Function URL through MiniStack's path form;
                     # client callbacks go to loopback receivers only: the local stack never calls out.
                     f"LocalEndpoint={self.endpoint}", "CallbackNetwork=loopback",
                     "RetryBaseSeconds=2",  # locally, a provider outage is retried within seconds
                     *(f"{name}={value}" for name, value in self.parameters.items())]
        self._run(["sam", "deploy", "--config-env", STAGE, "--no-progressbar",
                   "--parameter-overrides", *overrides], "sam deploy")
        cloudformation = self.client("cloudformation")
        stack = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.api_url = f"{self.endpoint}/_aws/execute-api/{self.outputs['ApiId']}/{STAGE}"
        self._fix_scaling_configs()
        self._fix_api_key_required()
        self._fix_gateway_responses()

    def _fix_scaling_configs(self) -> None:
        """MiniStack 1.5.33 keeps a Number parameter's value as a string in an event source
        mapping's ScalingConfig, and its SQS poller then fails comparing it. AWS converts it;
        here the launcher sets the same value again as an integer through the Lambda API (its
        answers show the value as a number either way, so it is set unconditionally)."""
        lambda_client = self.client("lambda")
        for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
            maximum = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
            if maximum is not None:
                lambda_client.update_event_source_mapping(
                    UUID=mapping["UUID"], ScalingConfig={"MaximumConcurrency": int(maximum)})

    def _fix_api_key_required(self) -> None:
        """MiniStack 1.5.33 reads a method's API key only from the x-api-key header, never from the
        authorizer's usageIdentifierKey (the template's ApiKeySourceType: AUTHORIZER), so every
        request would be refused as INVALID_API_KEY. Locally the methods do without one: the
        stage's throttle still applies; the per-tenant usage plan is AWS's alone."""
        apigateway = self.client("apigateway")
        api_id = self.outputs["ApiId"]
        for resource in apigateway.get_resources(restApiId=api_id, limit=500)["items"]:
            for method in resource.get("resourceMethods") or {}:
                if apigateway.get_method(restApiId=api_id, resourceId=resource["id"],
                                         httpMethod=method).get("apiKeyRequired"):
                    # "remove": MiniStack would keep a "replace" value "false" as a (true) string.
                    apigateway.update_method(restApiId=api_id, resourceId=resource["id"], httpMethod=method,
                                             patchOperations=[{"op": "remove", "path": "/apiKeyRequired"}])

    def _fix_gateway_responses(self) -> None:
        """MiniStack 1.5.33 does not read the gateway responses SAM writes into the API's OpenAPI
        body, so its 401/403/429 would not be in Tuma's error shape. The launcher puts the
        template's own GatewayResponses through the API Gateway API and deploys the stage again
        (a deployment takes the gateway responses in effect)."""
        from samtranslator.yaml_helper import yaml_parse

        template = yaml_parse((ROOT / "template.yaml").read_text())
        responses = template["Resources"]["Api"]["Properties"].get("GatewayResponses") or {}
        apigateway = self.client("apigateway")
        api_id = self.outputs["ApiId"]
        for kind, response in responses.items():
            apigateway.put_gateway_response(restApiId=api_id, responseType=kind,
                                            statusCode=str(response["StatusCode"]),
                                            responseTemplates=response.get("ResponseTemplates") or {})
        apigateway.create_deployment(restApiId=api_id, stageName=STAGE)

    def _put_credentials(self, credentials: dict) -> None:
        ssm = self.client("ssm")
        for name, value in credentials.items():
            ssm.put_parameter(Name=f"/tuma/{STAGE}/providers/{name}", Value=value, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name=f"/tuma/{STAGE}/webhook/sayasms_token", Value=self.webhook_token,
                          Type="SecureString", Overwrite=True)

    def create_api_key(self, tenant_id: str) -> str:
        """A new key for `tenant_id` in the deployed table, made by the layer's own code; the
        tenant's callback signing secret is created with its first key."""
        sys.path.insert(0, str(ROOT / "layers" / "tuma"))
        from tuma.store.api_keys import create_api_key

        api_key = create_api_key(tenant_id, label="local", key_table=self._table(), sender_ids=SENDER_IDS)
        self.tenant_signing_secret(tenant_id)
        return api_key

    def tenant_signing_secret(self, tenant_id: str) -> str:
        """The tenant's callback signing secret (created if it has none)."""
        sys.path.insert(0, str(ROOT / "layers" / "tuma"))
        from tuma.store.tenants import ensure_signing_secret

        return ensure_signing_secret(tenant_id, secret_table=self._table())[0]

    # --- the sender's execution, killed mid-batch (the fault suite, docs/reliability.md) ------

    def function_workers(self, logical_id: str) -> list[int]:
        """Pids of the processes running a function of this stack: MiniStack runs a Python
        function in a child process whose working directory is
        <tmp>/ministack-lambda-<function name>-<random>/code (one per concurrent execution)."""
        name = self.client("cloudformation").describe_stack_resource(
            StackName=STACK_NAME, LogicalResourceId=logical_id)["StackResourceDetail"]["PhysicalResourceId"]
        ours = {proc.pid for proc in self.processes[:1]}  # MiniStack: other stacks' workers are not ours
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and f"ministack-lambda-{name}-" in _cwd(entry) and _descends(entry, ours):
                pids.append(int(entry.name))
        return pids

    def _table(self):
        return self._session().resource("dynamodb", endpoint_url=self.endpoint).Table(self.outputs["TableName"])

    @property
    def webhook_url(self) -> str:
        """The SayaSMS webhook as the simulator reaches it (without its ?token=)."""
        url_id = self.outputs["WebhookFunctionUrl"].split("/")[2].split(".")[0]
        return f"{self.endpoint}/_aws/lambda-url/{url_id}/v1/webhooks/sayasms"

    def client(self, service: str):
        return self._session().client(service, endpoint_url=self.endpoint)

    def _session(self):
        import boto3

        return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)

    def _write_env_file(self) -> None:
        STATE_DIR.mkdir(exist_ok=True)
        (STATE_DIR / "local.env").write_text(
            f"TUMA_URL={self.api_url}\nTUMA_KEY={self.api_key}\n"
            f"TUMA_SIM_254SMS_URL={self.sms254_url}\nTUMA_SIM_SAYASMS_URL={self.sayasms_url}\n"
            f"TUMA_SIGNING_SECRET={self.signing_secret}\nTUMA_WEBHOOK_URL={self.webhook_url}\n")


def _cwd(proc_dir: Path) -> str:
    try:
        return os.readlink(proc_dir / "cwd")
    except OSError:
        return ""


def _descends(proc_dir: Path, ancestors: set[int]) -> bool:
    """Whether the process at /proc/<pid> is a descendant of one of `ancestors`."""
    pid = int(proc_dir.name)
    for _ in range(10):
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid in ancestors:
            return True
        if pid <= 1:
            return False
    return False


def _relay(name: str, proc: subprocess.Popen) -> None:
    for line in proc.stdout:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


def _say(text: str) -> None:
    print(f"[tuma] {text}", flush=True)


def _banner(stack: LocalStack) -> str:
    sample = json.dumps({"to": ["+254712345678", "+254722111222"], "from": "SAYARADIUS",
                         "body": "Hello! Your verification code is 834921."})
    return f"""
Tuma is running locally.

  API URL   {stack.api_url}
  API key   {stack.api_key}
  Callback signing secret   {stack.signing_secret}   (verify callbacks with it: docs/callbacks.md)
  254sms simulator   {stack.sms254_url}   (requests it received: {stack.sms254_url}/_sim/requests)
  SayaSMS simulator  {stack.sayasms_url}   (requests it received: {stack.sayasms_url}/_sim/requests;
                     delivery reports it sent: {stack.sayasms_url}/_sim/callbacks/log)

Try it:
  curl -X POST {stack.api_url}/v1/messages \\
    -H "Authorization: Bearer {stack.api_key}" \\
    -H "Content-Type: application/json" \\
    -d '{sample}'

The same values are in .tuma/local.env. Ctrl-C stops everything.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    stack = LocalStack()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stack.start()
        print(_banner(stack), flush=True)
        # Once up, Ctrl-C is handled explicitly too: a shell that starts us in the background
        # leaves SIGINT ignored, and the stack must still stop.
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        while not stopping.is_set():
            dead = [p for p in stack.processes if p.poll() is not None]
            if dead:
                raise StackError(f"a process of the local stack exited (code {dead[0].returncode}); see the log above.")
            stopping.wait(1)
    except KeyboardInterrupt:
        pass
    except StackError as problem:
        print(f"\n[tuma] {problem}", file=sys.stderr, flush=True)
        return 1
    finally:
        _say("stopping ...")
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
