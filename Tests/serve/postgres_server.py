"""A PostgreSQL server of the serve tests' own, as Tests/Support/PostgresServer.swift starts
one for the Swift tests: `initdb` into a temporary folder, `pg_ctl start` on a free
127.0.0.1 port with trust authentication for `postgres`, a fresh database per test, stopped
and removed at the end. As root the server runs as the `postgres` user (PostgreSQL refuses
root); otherwise as the current user. `make deps` installs PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid


def binaries() -> str | None:
    """The newest /usr/lib/postgresql/VERSION/bin holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


class PostgresServer:
    def __init__(self, bin_dir: str):
        self.bin = bin_dir
        self.as_postgres = os.geteuid() == 0
        # Under /tmp, not pytest's 0700 folder: the postgres user must reach it.
        self.directory = tempfile.mkdtemp(prefix="mbdata-pg-")
        self.data = os.path.join(self.directory, "data")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")

    def _server_tool(self, tool: str, *arguments: str) -> None:
        command = [os.path.join(self.bin, tool), *arguments]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        # Output to a file, not a pipe: the server started by pg_ctl must not hold our pipe.
        with open(os.path.join(self.directory, f"{tool}.out"), "ab") as out:
            subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=True, timeout=180)

    def start(self) -> "PostgresServer":
        if not os.path.exists(self.data):
            self._server_tool("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._server_tool("pg_ctl", "-D", self.data, "-l", os.path.join(self.directory, "server.log"), "-w", "-t", "120", "-o", options, "start")
        return self

    def create_database(self) -> str:
        """A fresh, empty database; returns its postgresql:// URL."""
        name = "test_" + uuid.uuid4().hex
        subprocess.run([os.path.join(self.bin, "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}?sslmode=disable"

    def stop(self) -> None:
        try:
            self._server_tool("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "120", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
