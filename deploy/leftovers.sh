#!/usr/bin/env bash
# Runs a command (default: make test) and fails when it left Docker
# containers, networks or volumes behind: the ids before and after are
# compared, and every new one is named. Only growth counts, so what else
# runs on the machine (your stack) is no concern unless it starts
# something meanwhile. Usage: leftovers.sh [COMMAND...]
set -euo pipefail
[ $# -gt 0 ] || set -- make test
snapshot() {
  docker ps -aq --no-trunc | sed 's/^/container /'
  docker network ls -q --no-trunc | sed 's/^/network /'
  docker volume ls -q | sed 's/^/volume /'
}
before=$(mktemp); after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT
snapshot | sort >"$before"
rc=0
"$@" || rc=$?
snapshot | sort >"$after"
new=$(comm -13 "$before" "$after")
count() { grep -c "^$1 " <<<"$2" || true; }
printf 'leftovers after `%s`: %d containers, %d networks, %d volumes\n' "$*" \
  "$(count container "$new")" "$(count network "$new")" "$(count volume "$new")"
if [ -n "$new" ]; then
  while read -r kind id; do
    case $kind in
      container) desc=$(docker inspect -f '{{.Name}} ({{.Config.Image}}, {{.State.Status}}) labels {{json .Config.Labels}}' "$id" 2>/dev/null || true) ;;
      network) desc=$(docker network inspect -f '{{.Name}} labels {{json .Labels}}' "$id" 2>/dev/null || true) ;;
      volume) desc=$(docker volume inspect -f '{{.Name}} labels {{json .Labels}}' "$id" 2>/dev/null || true) ;;
    esac
    echo "  left behind: $kind ${desc:-$id}" >&2
  done <<<"$new"
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
