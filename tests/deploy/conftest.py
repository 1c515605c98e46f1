"""Offline tools for checking the Helm chart: helm itself (built from the Go module proxy
when it is not installed), and the CRD schemas of KEDA and the Prometheus Operator (from
their Go modules). In CI they must be had; on a laptop without Go the tests skip."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

HELM = "helm.sh/helm/v3/cmd/helm@v3.22.0"
KEDA = "github.com/kedacore/keda/v2@v2.21.0"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
_GO_HOMES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamkit" / "tools"


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI must check the chart)")
    pytest.skip(why)


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        _unavailable("Go is not installed: helm and the CRD schemas come from its module proxy")
    return str(go)


@pytest.fixture(scope="session")
def helm() -> str:
    """A helm binary: on PATH, or built once into the cache (about 2 minutes)."""
    found = shutil.which("helm")
    if found:
        return found
    target = CACHE / HELM.replace("/", "_")
    binary = target / "helm"
    if not binary.exists():
        built = subprocess.run(
            [_go(), "install", HELM],
            env={**os.environ, "GOBIN": str(target)},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if built.returncode != 0:
            _unavailable(f"building helm failed: {built.stderr.strip()[-500:]}")
    return str(binary)


def _module_dir(module: str) -> Path:
    done = subprocess.run(
        [_go(), "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=CACHE.parent if CACHE.parent.exists() else None,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
    )
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Dir" not in info:
        _unavailable(f"downloading {module} failed: {info.get('Error', done.stderr)[-500:]}")
    return Path(info["Dir"])


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """The openAPIV3Schema of each CRD the chart renders, by (apiVersion, kind)."""
    files = [
        _module_dir(KEDA) / "config/crd/bases/keda.sh_scaledobjects.yaml",
        _module_dir(KEDA) / "config/crd/bases/keda.sh_triggerauthentications.yaml",
        _module_dir(PROMETHEUS_OPERATOR)
        / "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ]
    schemas = {}
    for path in files:
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas
