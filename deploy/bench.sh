#!/usr/bin/env bash
# make bench: measure `make up` to healthy, then every benchmark row against
# its baseline (services/cmd/benchreport): >= 10 ABBA rounds a row, a 95 %
# bootstrap interval, the raw rounds appended to bench/history.jsonl and
# BENCHMARKS.md generated from that run. Not in CI (about 15 min on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local TESTCONTAINERS_RYUK_DISABLED=true
compose=$(if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)
# Its own compose project, port, bundle and sandbox instance: `down -v`
# below must never touch the operator's stack (make up's defaults).
export COMPOSE_PROJECT_NAME=moltbot-bench MOLTBOT_PORT=18798 MOLTBOT_UI_PORT=18784 MOLTBOT_BUNDLE_DIR=./.moltbot-bench MOLTBOT_INSTANCE=bench

# Images of this tree under its own tag (IMAGE_TAG=<tag> make bench); bin/
# (images builds it) and Chromium for the Control UI rows' local stack.
tag=${MOLTBOT_IMAGE_TAG:-latest}
make -s images sandbox-testimage chromium IMAGE_TAG="$tag" >/dev/null 2>&1
# Full stack to healthy, images built, fresh volumes.
$compose down -v --remove-orphans >/dev/null 2>&1 || true
mkdir -p "$MOLTBOT_BUNDLE_DIR" && chmod 700 "$MOLTBOT_BUNDLE_DIR"
start=$(date +%s%N)
HOST_UID=$(id -u) HOST_GID=$(id -g) DOCKER_GID=$(stat -c %g /var/run/docker.sock) $compose up -d >/dev/null 2>&1
deploy/wait-healthy.sh 60 $compose >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
up=$(printf '%d.%02d' $((ms/1000)) $(( (ms%1000)/10 )))
echo "make up to healthy: ${up} s"
$compose down -v --remove-orphans >/dev/null 2>&1 || true
# sandboxd's own containers and volumes are not compose's: by label.
ids=$(docker ps -aq --filter label=moltbot.sandbox.instance=$MOLTBOT_INSTANCE); [ -z "$ids" ] || docker rm -f $ids >/dev/null
vols=$(docker volume ls -q --filter label=moltbot.sandbox.instance=$MOLTBOT_INSTANCE); [ -z "$vols" ] || docker volume rm $vols >/dev/null
rm -rf "$MOLTBOT_BUNDLE_DIR"

cd services && go run ./cmd/benchreport -root .. -make-up "$up" "$@"
