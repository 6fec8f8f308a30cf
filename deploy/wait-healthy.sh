#!/usr/bin/env bash
# Polls the compose stack until every long-running service is healthy
# (docker-compose 1.29 has no `up --wait`). Usage: wait-healthy.sh TIMEOUT_S COMPOSE...
set -euo pipefail
timeout=${1:-60}; shift
start=$(date +%s%N)
services="secretsd pairingd sandboxd gateway"
while :; do
  ok=0; total=0; report=""
  for s in $services; do
    total=$((total+1))
    id=$("$@" ps -q "$s" 2>/dev/null || true)
    st=unknown
    [ -n "$id" ] && st=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
    report="$report $s=$st"
    [ "$st" = healthy ] && ok=$((ok+1))
    if [ "$st" = unhealthy ] || [ "$st" = exited ]; then
      echo "service $s is $st; its last log lines:" >&2
      "$@" logs --tail 20 "$s" >&2 || true
      exit 1
    fi
  done
  if [ "$ok" -eq "$total" ]; then
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    printf 'all %d services healthy in %d.%03d s\n' "$total" $((ms/1000)) $((ms%1000))
    exit 0
  fi
  if [ $(( ($(date +%s%N) - start) / 1000000000 )) -ge "$timeout" ]; then
    echo "timed out after ${timeout}s:$report" >&2
    exit 1
  fi
  sleep 0.2
done
