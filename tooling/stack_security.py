"""The stack's credentials: every service refuses a request without them
(docs/scale-out.md). Generated per stack, kept in files of mode 0600 under the stack's folder
(0700), handed to clients through `.stack/env` under the names the tools read.

- MLflow: its own login (`mlflow server --app-name basic-auth`): an admin user and password
  of this stack, no permission for anyone else (MLFLOW_TRACKING_USERNAME / _PASSWORD).
- Dask: TLS with mutual authentication (`distributed.Security`): a CA of this stack, and
  certificates for the scheduler, the workers and the client; encryption required.
- SeaweedFS: inside a network namespace of its own, with only its S3 port (which checks the
  stack's keys) let out (`tooling.netns_gate`); its filer and volume servers also require
  SeaweedFS's JWT. Where namespaces cannot be made (not root, no `ip`), it runs on the host's
  loopback with the JWTs, and `up` says what is then still open (the master's HTTP port).
- PostgreSQL: one role per database, with a generated password, owning only that database
  (never the superuser); the server is told to ask these roles for their password.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tooling.certs import Pair, authority, issue

ROLE_GROUP = "insurance_stack_roles"
HBA_MARK = "# insurance_pipeline make stack: its roles log in with their password"


def write_private(path: Path, text: str) -> Path:
    """`text` in a file only its owner can read (mode 0600 from its creation)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
    return path


def new_secrets() -> dict[str, str]:
    names = ("mlflow_password", "flask_secret", "jwt_write", "jwt_read", "jwt_filer")
    values = {name: secrets.token_urlsafe(24) for name in names}
    values |= {f"pg_{use}": secrets.token_urlsafe(24) for use in ("dagster", "mlflow", "auth")}
    return values


# --- Dask ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaskTls:
    ca: Path
    scheduler: Pair
    worker: Pair
    client: Pair

    def client_env(self) -> dict[str, str]:
        """Dask's own configuration variables: any `Client(address)` of the pipeline (and
        `distributed.Security()`) reads them."""
        return {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.ca),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.client.cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.client.key),
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        }

    @staticmethod
    def flags(pair: Pair, ca: Path) -> list[str]:
        return ["--tls-ca-file", str(ca), "--tls-cert", str(pair.cert), "--tls-key", str(pair.key)]


def dask_tls(folder: Path) -> DaskTls:
    ca = authority(folder, "insurance-stack-dask-ca")
    return DaskTls(
        ca.cert,
        *(issue(ca, folder, f"dask-{name}") for name in ("scheduler", "worker", "client")),
    )


# --- MLflow ----------------------------------------------------------------------------------


def mlflow_auth_config(path: Path, database_uri: str, password: str) -> Path:
    """MLflow's basic-auth settings: this stack's admin, nobody else may read or write."""
    text = "\n".join(
        [
            "[mlflow]",
            "default_permission = NO_PERMISSIONS",
            f"database_uri = {database_uri}",
            "admin_username = insurance",
            f"admin_password = {password}",
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
            "grant_default_workspace_access = false",
            # each request's password is otherwise checked with PBKDF2 anew: a warm run makes
            # hundreds of requests (its single worker holds the cache; nothing else changes it)
            "auth_cache_ttl_seconds = 300",
            "auth_cache_max_size = 100",
            "",
        ]
    )
    return write_private(path, text)


# --- SeaweedFS -------------------------------------------------------------------------------


def weed_security(folder: Path, keys: dict[str, str]) -> Path:
    """`security.toml` for `weed -config_dir`: the volume and filer servers refuse a
    request without a JWT signed with the stack's keys."""
    sections = {
        "jwt.signing": keys["jwt_write"],
        "jwt.signing.read": keys["jwt_read"],
        "jwt.filer_signing": keys["jwt_filer"],
        "jwt.filer_signing.read": keys["jwt_filer"],
    }
    lines = []
    for name, key in sections.items():
        lines += [f"[{name}]", f'key = "{key}"', "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", ""]
    return write_private(folder / "security.toml", "\n".join(lines))


def namespaces_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def ensure_namespace(name: str) -> None:
    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if name not in {line.split()[0] for line in found.splitlines() if line.strip()}:
        subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)


def delete_namespace(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


# --- PostgreSQL ------------------------------------------------------------------------------


def ensure_role(cur, role: str, password: str, database: str) -> None:
    """A login role with this password, owning `database` alone; nobody else may connect."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE_GROUP,))
    if cur.fetchone() is None:
        cur.execute(f"CREATE ROLE {ROLE_GROUP} NOLOGIN")
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(
        f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s", (password,)
    )
    cur.execute(f"GRANT {ROLE_GROUP} TO {role}")
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
    if cur.fetchone() is None:
        cur.execute(f"CREATE DATABASE {database} OWNER {role}")
    cur.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    cur.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")


def require_passwords(cur) -> str | None:
    """Make the server ask the stack's roles for their password (a line in pg_hba.conf
    before its `trust` lines, then a reload). Returns what is still open, if it could not."""
    cur.execute("SHOW hba_file")
    hba = Path(cur.fetchone()[0])
    try:
        text = hba.read_text()
    except OSError as error:
        return f"PostgreSQL: {hba} cannot be read ({error}): the roles' passwords are not required"
    if HBA_MARK not in text:
        rules = [
            HBA_MARK,
            f"local   all  +{ROLE_GROUP}                 scram-sha-256",
            f"host    all  +{ROLE_GROUP}  127.0.0.1/32   scram-sha-256",
            f"host    all  +{ROLE_GROUP}  ::1/128        scram-sha-256",
        ]
        try:
            hba.write_text("\n".join(rules) + "\n" + text)
        except OSError as error:
            return f"PostgreSQL: {hba} cannot be written ({error}): passwords are not required"
    cur.execute("SELECT pg_reload_conf()")
    return None
