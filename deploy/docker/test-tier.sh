#!/usr/bin/env bash
# The docker tier of `make test-all` (run when CI=true, or with `make test-docker`):
# installs Docker and debootstrap with apt when missing, starts dockerd when no engine
# answers, builds the local images, runs the tests marked `docker` against them, and
# removes what it started (containers, networks, dockerd), also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=${TMPDIR:-/tmp}/streamkit-docker-tier
mkdir -p "$STATE"
started_dockerd=""
began=$SECONDS
log() { echo "docker-tier: $*" >&2; }

cleanup() {
  set +e
  for project in $(docker ps -aq --filter label=com.docker.compose.project 2>/dev/null \
      | xargs -r docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' \
      | sort -u | grep '^streamkit-smoke'); do
    docker-compose -p "$project" down -v --remove-orphans >/dev/null 2>&1
  done
  docker ps -aq --filter label=org.testcontainers=true | xargs -r docker rm -f >/dev/null 2>&1
  if [ -n "$started_dockerd" ]; then
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1
    kill "$(cat "$STATE/dockerd.pid")" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null || break; sleep 1; done
    log "stopped dockerd"
  fi
  log "docker tier took $((SECONDS - began))s"
}
trap cleanup EXIT

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "error: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    exit 1
  fi
  log "installing ${missing[*]} with apt"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || { tail -20 "$STATE/apt.log" >&2; exit 1; }
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  dockerd >"$STATE/dockerd.log" 2>&1 &
  echo $! >"$STATE/dockerd.pid"
  started_dockerd=1
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "error: dockerd did not start"; tail -20 "$STATE/dockerd.log" >&2; exit 1; }
fi

deploy/docker/build-images.sh

export STREAMKIT_TEST_BROKER=docker
export STREAMKIT_TEST_KAFKA_IMAGE=streamkit/kafka:local KAFKA_IMAGE=streamkit/kafka:local
export PYTHON_BASE_IMAGE=streamkit/base:local STREAMKIT_IMAGE=streamkit:local
export POSTGRES_IMAGE=streamkit/postgres:local CONNECT_IMAGE=streamkit/connect:local
export TESTCONTAINERS_RYUK_DISABLED=true
.venv/bin/pytest -m docker "$@"
