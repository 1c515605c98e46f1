# ruff: noqa: S108, S606 - a container entrypoint: its own /tmp, its own programs
"""The official postgres image's start-up, in short: initialise PGDATA on first start
(with POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust), run the init scripts, then
run the server as the postgres user with the command's arguments."""

import glob
import os
import pwd
import subprocess
import sys

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
PGDATA = os.environ.get("PGDATA", "/var/lib/postgresql/data")
USER = os.environ.get("POSTGRES_USER", "postgres")
DB = os.environ.get("POSTGRES_DB", USER)
PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")
METHOD = os.environ.get("POSTGRES_HOST_AUTH_METHOD") or ("scram-sha-256" if PASSWORD else "")


def as_postgres() -> None:
    user = pwd.getpwnam("postgres")
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, preexec_fn=as_postgres if os.getuid() == 0 else None)


def initialise() -> None:
    if not METHOD:
        sys.exit("error: set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust")
    os.makedirs(PGDATA, exist_ok=True)
    subprocess.run(["chown", "-R", "postgres:postgres", PGDATA], check=True)
    pwfile = "/tmp/pgpass"
    with open(pwfile, "w") as f:
        f.write(PASSWORD or "unused")
    os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    run(
        f"{BIN}/initdb",
        "-D",
        PGDATA,
        "-U",
        USER,
        "--pwfile",
        pwfile,
        "--auth-local=trust",
        f"--auth-host={METHOD}",
        "--encoding=UTF8",
    )
    os.remove(pwfile)
    with open(f"{PGDATA}/pg_hba.conf", "a") as hba:
        hba.write(f"host all all all {METHOD}\nhost replication all all {METHOD}\n")
    run(
        f"{BIN}/pg_ctl",
        "-D",
        PGDATA,
        "-w",
        "start",
        "-o",
        "-c listen_addresses='' -c unix_socket_directories=/tmp",
    )
    if DB != "postgres":
        run(
            f"{BIN}/psql",
            "-h",
            "/tmp",
            "-U",
            USER,
            "-d",
            "postgres",
            "-c",
            f'CREATE DATABASE "{DB}"',
        )
    for script in sorted(glob.glob("/docker-entrypoint-initdb.d/*.sql")):
        run(
            f"{BIN}/psql", "-h", "/tmp", "-U", USER, "-d", DB, "-v", "ON_ERROR_STOP=1", "-f", script
        )
    run(f"{BIN}/pg_ctl", "-D", PGDATA, "-w", "stop", "-m", "fast")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["postgres"]:
        args = args[1:]
    if not os.path.exists(f"{PGDATA}/PG_VERSION"):
        initialise()
    if os.getuid() == 0:
        as_postgres()
    os.execv(
        f"{BIN}/postgres",
        [
            f"{BIN}/postgres",  # its own path: it finds its libraries from there
            "-D",
            PGDATA,
            "-c",
            "listen_addresses=*",
            "-c",
            "unix_socket_directories=/tmp",
            *args,
        ],
    )


if __name__ == "__main__":
    main()
