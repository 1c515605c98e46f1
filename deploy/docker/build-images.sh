#!/usr/bin/env bash
# Build the images CI needs without an image registry:
#   streamkit/base:local    Debian (debootstrap) with Java 17 and Python 3, via `docker import`
#   streamkit/kafka:local   Apache Kafka from Maven jars on that base (apache/kafka's env)
#   streamkit:local         the worker image, from a wheelhouse built here (no network)
#   streamkit/postgres:local  Debian's PostgreSQL (debootstrap), the postgres image's env
#   streamkit/connect:local   Kafka Connect + Debezium from Maven jars, debezium/connect's env
# Each image is tagged with a hash of its inputs and rebuilt only when they change.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${STREAMKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamkit}/images
PY=${PY:-.venv/bin/python}
mkdir -p "$CACHE"
export DOCKER_BUILDKIT=0

have() { docker image inspect "$1" >/dev/null 2>&1; }
hash_of() { cat "$@" | sha256sum | cut -c1-12; }
log() { echo "build-images: $*" >&2; }

# -- bases (debootstrap, docker import) -------------------------------------------------
# bootstrap NAME PACKAGES: streamkit/NAME:local, a Debian bookworm with PACKAGES
bootstrap() {
  local name=$1 packages=$2 tag rootfs mirror start
  tag=$(echo "bookworm minbase $packages" | sha256sum | cut -c1-12)
  if ! have "streamkit/$name:$tag"; then
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXX")
    # the same Debian mirror as this machine's apt sources (debootstrap's default otherwise)
    mirror=$(grep -rhoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -v security | head -1 | awk '{print $2}' || true)
    log "debootstrap bookworm ($packages) into $rootfs"
    start=$SECONDS
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" ${mirror:+"$mirror"} >"$CACHE/debootstrap-$name.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap-$name.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "streamkit/$name:$tag" >/dev/null
    rm -rf "$rootfs"
    log "$name image in $((SECONDS - start))s"
  fi
  docker tag "streamkit/$name:$tag" "streamkit/$name:local"
  echo "$tag"
}
BASE_TAG=$(bootstrap base openjdk-17-jre-headless,python3,python3-venv)

# -- kafka -----------------------------------------------------------------------------
KAFKA_CTX="$CACHE/kafka-context"
KAFKA_TAG=$(hash_of deploy/docker/kafka/pom.xml deploy/docker/kafka/Dockerfile deploy/docker/kafka/*.py deploy/docker/kafka/*.sh <(echo "$BASE_TAG"))
if ! have "streamkit/kafka:$KAFKA_TAG"; then
  rm -rf "$KAFKA_CTX" && mkdir -p "$KAFKA_CTX"
  log "resolving Kafka jars with Maven"
  mvn -q -B -f deploy/docker/kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_CTX/libs"
  cp deploy/docker/kafka/Dockerfile deploy/docker/kafka/entrypoint.py deploy/docker/kafka/*.sh "$KAFKA_CTX/"
  docker build -q --build-arg BASE_IMAGE=streamkit/base:local -t "streamkit/kafka:$KAFKA_TAG" "$KAFKA_CTX" >/dev/null
  log "kafka image built"
fi
docker tag "streamkit/kafka:$KAFKA_TAG" streamkit/kafka:local

# -- postgres ----------------------------------------------------------------------------
PG_BASE_TAG=$(bootstrap postgres-base postgresql,python3)
PG_TAG=$(hash_of deploy/docker/postgres/Dockerfile deploy/docker/postgres/entrypoint.py <(echo "$PG_BASE_TAG"))
if ! have "streamkit/postgres:$PG_TAG"; then
  docker build -q --build-arg BASE_IMAGE=streamkit/postgres-base:local -t "streamkit/postgres:$PG_TAG" deploy/docker/postgres >/dev/null
  log "postgres image built"
fi
docker tag "streamkit/postgres:$PG_TAG" streamkit/postgres:local

# -- connect -----------------------------------------------------------------------------
CONNECT_CTX="$CACHE/connect-context"
CONNECT_TAG=$(hash_of deploy/connect/pom.xml deploy/docker/connect/* <(echo "$BASE_TAG"))
if ! have "streamkit/connect:$CONNECT_TAG"; then
  rm -rf "$CONNECT_CTX" && mkdir -p "$CONNECT_CTX"
  log "resolving Kafka Connect and Debezium jars with Maven"
  mvn -q -B -f deploy/connect/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$CONNECT_CTX/libs"
  cp deploy/docker/connect/* "$CONNECT_CTX/"
  docker build -q --build-arg BASE_IMAGE=streamkit/base:local -t "streamkit/connect:$CONNECT_TAG" "$CONNECT_CTX" >/dev/null
  log "connect image built"
fi
docker tag "streamkit/connect:$CONNECT_TAG" streamkit/connect:local

# -- worker ----------------------------------------------------------------------------
WORKER_TAG=$(hash_of pyproject.toml deploy/docker/Dockerfile $(git ls-files streamkit processors schemas deploy/connect) <(echo "$BASE_TAG"))
if ! have "streamkit:$WORKER_TAG"; then
  rm -rf deploy/docker/wheelhouse/*.whl
  log "building the wheelhouse"
  "$PY" -m pip wheel --quiet -w deploy/docker/wheelhouse .
  docker build -q -f deploy/docker/Dockerfile --build-arg PYTHON_BASE_IMAGE=streamkit/base:local \
    -t "streamkit:$WORKER_TAG" "$ROOT" >/dev/null
  rm -f deploy/docker/wheelhouse/*.whl
  log "worker image built"
fi
docker tag "streamkit:$WORKER_TAG" streamkit:local
log "ready: streamkit/base:local streamkit/kafka:local streamkit:local streamkit/postgres:local streamkit/connect:local"
