"""PostgreSQL for tests: CHATOPS_TEST_POSTGRES, or a throwaway cluster (initdb, pg_ctl)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_URL = "CHATOPS_TEST_POSTGRES"
SUPERUSER = "chatops"
START_SECONDS = 30
STOP_SECONDS = 20

# A test cluster trades durability for speed; the benchmark starts one with durable=True.
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class ProvisionError(RuntimeError):
    """The test cluster could not be created or started; says why and what to install."""


def find_binary(name: str) -> str:
    """`name` on PATH, else in the newest /usr/lib/postgresql/<version>/bin (Debian's layout)."""
    found = shutil.which(name)
    if found:
        return found

    def version(path: str) -> int:
        part = Path(path).parts[-3]
        return int(part) if part.isdigit() else 0

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version)
    if not candidates:
        raise ProvisionError(
            f"{name} not found on PATH or under /usr/lib/postgresql/*/bin; install PostgreSQL "
            f"(scripts/bot.sh test does: apt-get install postgresql) or set {ENV_URL} to a "
            "server URL whose user may CREATE DATABASE"
        )
    return candidates[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who runs initdb and the server: ourselves, or an unprivileged account when we are root
    (initdb refuses to run as root)."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_this_process(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls()
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return cls(entry.pw_uid, entry.pw_gid)
        raise ProvisionError("running as root and neither a postgres nor a nobody user exists")

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def run(self, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        # LC_ALL=C: initdb must not depend on the host's locales.
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(
            args,
            user=self.uid,
            group=self.gid,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class Cluster:
    """One PostgreSQL cluster in a temporary folder, listening only on 127.0.0.1.

    The folder holds the data directory, the log and the unix socket directory, and is owned
    by whoever runs the server; `stop()` shuts the server down and removes all of it.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self._durable = durable
        self._as = RunAs.for_this_process()
        self._password = secrets.token_urlsafe(16)
        self._root: Path | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The superuser's URL, for the maintenance database `postgres`."""
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        assert self._root is not None
        return self._root / "server.log"

    def start(self) -> None:
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        self._root = Path(tempfile.mkdtemp(prefix="chatops-pg-"))
        try:
            self._as.own(self._root)
            data, sockets = self._root / "data", self._root / "sock"
            pwfile = self._root / "pw"
            sockets.mkdir()
            self._as.own(sockets)
            pwfile.write_text(self._password + "\n")
            self._as.own(pwfile)
            done = self._as.run(
                [
                    initdb,
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    # Password checks over TCP (the URL's password is real), none on the socket.
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                timeout=START_SECONDS * 2,
            )
            pwfile.unlink()
            if done.returncode != 0:
                raise ProvisionError(f"initdb failed: {(done.stderr or done.stdout).strip()}")
            self._launch(pg_ctl, data, sockets)
        except BaseException:
            self.stop()
            raise

    def _launch(self, pg_ctl: str, data: Path, sockets: Path) -> None:
        settings = [
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={sockets}",
            "max_connections=400",
            "shared_buffers=64MB",
            *(() if self._durable else FAST),
        ]
        # A port picked free can be taken before the server binds it: try a few.
        for attempt in range(3):
            self.port = free_port()
            options = " ".join(f"-c {s}" for s in [f"port={self.port}", *settings])
            done = self._as.run(
                [
                    pg_ctl,
                    "start",
                    "-D",
                    str(data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(START_SECONDS),
                ],
                timeout=START_SECONDS + 10,
            )
            if done.returncode == 0:
                return
            tail = self._log_tail()
            if "already in use" not in tail or attempt == 2:
                raise ProvisionError(
                    f"PostgreSQL did not start within {START_SECONDS} s on 127.0.0.1:"
                    f"{self.port}: {(done.stderr or done.stdout).strip()}\n{tail}"
                )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    def stop(self) -> None:
        root, self._root = self._root, None
        if root is None:
            return
        try:
            if (root / "data" / "postmaster.pid").exists():
                # immediate: nothing in a test cluster is worth a checkpoint on the way out.
                self._as.run(
                    [
                        find_binary("pg_ctl"),
                        "stop",
                        "-D",
                        str(root / "data"),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        str(STOP_SECONDS),
                    ],
                    timeout=STOP_SECONDS + 10,
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def server_url(*, durable: bool = False) -> Iterator[str]:
    """A superuser URL: CHATOPS_TEST_POSTGRES when set, else a cluster started for the block."""
    given = os.environ.get(ENV_URL, "").strip()
    if given:
        yield given
        return
    cluster = Cluster(durable=durable)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def redacted(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
