"""Java and the Kafka broker's jars: found, checked and cached for the local broker."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from streamkit.errors import BrokerError

MIN_JAVA = 17
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')
_COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class Java:
    """A Java runtime that is recent enough to run the broker."""

    path: str
    major: int


def parse_java_major(version_output: str) -> int:
    """Major version from ``java -version`` output (``1.8.0_392`` is 8, ``17.0.15`` is 17)."""
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        raise BrokerError(f"cannot read a Java version from: {version_output.strip()[:120]!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_java(java_home: str = "") -> Java:
    """The ``java`` to run: ``$JAVA_HOME/bin/java`` when set, else the one on PATH (>= 17)."""
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if not candidate.is_file():
            raise BrokerError(f"JAVA_HOME={java_home} has no bin/java; unset it or fix it")
        path = str(candidate)
    else:
        found = shutil.which("java")
        if found is None:
            raise BrokerError(
                f"Java not found: the local broker needs Java {MIN_JAVA} or newer on PATH "
                "(or JAVA_HOME)"
            )
        path = found
    try:
        done = subprocess.run(
            [path, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"cannot run {path} -version: {exc}") from exc
    major = parse_java_major(done.stderr + done.stdout)
    if major < MIN_JAVA:
        raise BrokerError(
            f"Java {major} at {path} is too old: the local broker needs Java {MIN_JAVA} or newer"
        )
    return Java(path=path, major=major)


def find_pom(kind: str = "kafka") -> Path:
    """The Maven pom of the broker (``kafka``) or of Kafka Connect (``connect``):
    packaged with streamkit, or in the source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (
        here / f"_{kind}" / "pom.xml",
        here.parents[1] / "deploy" / kind / "pom.xml",
    ):
        if candidate.is_file():
            return candidate
    raise BrokerError(f"deploy/{kind}/pom.xml is missing from this streamkit installation")


def kafka_version(pom: Path) -> str:
    """The Kafka version the pom pins (``<kafka.version>``)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    return match.group(1).strip() if match else "unknown"


def jars_dir(cache_dir: Path, pom: Path) -> Path:
    """Where the jars of this exact pom are cached: keyed by the pom's content."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return cache_dir / "kafka" / f"{kafka_version(pom)}-{digest}" / "lib"


def cached_jars(cache_dir: Path, pom: Path) -> Path | None:
    """The cached jar directory if a previous resolution completed, else None."""
    lib = jars_dir(cache_dir, pom)
    return lib if (lib / _COMPLETE_MARKER).is_file() else None


def ensure_jars(
    cache_dir: Path, pom: Path, mvn: str | None = None, expect: str = "kafka_2.13-"
) -> tuple[Path, bool]:
    """Return (jar directory, downloaded?) resolving the jars with Maven only when not
    cached (``expect``: the prefix of a jar the resolution must have brought)."""
    lib = cached_jars(cache_dir, pom)
    if lib is not None:
        return lib, False
    lib = jars_dir(cache_dir, pom)
    mvn = mvn or shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Maven (mvn) not found and no cached Kafka jars in {lib.parent}: "
            "install Maven once so streamkit can fetch the broker"
        )
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=900, check=False, env=_mvn_env()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(f"Maven could not fetch the Kafka jars: {exc}") from exc
    jars = list(staging.glob("*.jar"))
    if done.returncode != 0 or not any(j.name.startswith(expect) for j in jars):
        shutil.rmtree(staging, ignore_errors=True)
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise BrokerError(f"Maven could not fetch the Kafka jars (exit {done.returncode}): {tail}")
    (staging / _COMPLETE_MARKER).write_text(f"{len(jars)} jars from {pom}\n")
    if lib.exists():  # another process finished first; keep its copy
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(lib)
    return lib, True


def _mvn_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MAVEN_OPTS", "-Xmx512m")
    return env
