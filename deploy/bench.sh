#!/usr/bin/env bash
# make bench: measure `make up` to healthy, then every benchmark row against
# its baseline (services/cmd/benchreport), writing BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local TESTCONTAINERS_RYUK_DISABLED=true
compose=$(if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)

make -s images sandbox-testimage >/dev/null 2>&1
# Full stack to healthy, images built, fresh volumes.
$compose down -v --remove-orphans >/dev/null 2>&1 || true
mkdir -p .moltbot && chmod 700 .moltbot
start=$(date +%s%N)
HOST_UID=$(id -u) HOST_GID=$(id -g) DOCKER_GID=$(stat -c %g /var/run/docker.sock) $compose up -d >/dev/null 2>&1
deploy/wait-healthy.sh 60 $compose >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
up=$(printf '%d.%02d' $((ms/1000)) $(( (ms%1000)/10 )))
echo "make up to healthy: ${up} s"
$compose down -v --remove-orphans >/dev/null 2>&1 || true

cd services && go run ./cmd/benchreport -root .. -make-up "$up" "$@"
