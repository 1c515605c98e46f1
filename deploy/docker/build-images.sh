#!/usr/bin/env bash
# Build the images CI needs without an image registry:
#   streamkit/base:local    Debian (debootstrap) with Java 17 and Python 3, via `docker import`
#   streamkit/kafka:local   Apache Kafka from Maven jars on that base (apache/kafka's env)
#   streamkit:local         the worker image, from a wheelhouse built here (no network)
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

# -- base ------------------------------------------------------------------------------
PACKAGES=openjdk-17-jre-headless,python3,python3-venv
BASE_TAG=$(echo "bookworm minbase $PACKAGES" | sha256sum | cut -c1-12)
if ! have "streamkit/base:$BASE_TAG"; then
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXX")
  # the same Debian mirror as this machine's apt sources (debootstrap's default otherwise)
  mirror=$(grep -rhoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v security | head -1 | awk '{print $2}' || true)
  log "debootstrap bookworm into $rootfs"
  start=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" ${mirror:+"$mirror"} >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "streamkit/base:$BASE_TAG" >/dev/null
  rm -rf "$rootfs"
  log "base image in $((SECONDS - start))s"
fi
docker tag "streamkit/base:$BASE_TAG" streamkit/base:local

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

# -- worker ----------------------------------------------------------------------------
WORKER_TAG=$(hash_of pyproject.toml deploy/docker/Dockerfile $(git ls-files streamkit processors schemas) <(echo "$BASE_TAG"))
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
log "ready: streamkit/base:local streamkit/kafka:local streamkit:local"
