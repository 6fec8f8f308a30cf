#!/usr/bin/env bash
# Installs what a fresh machine lacks for a make target, or stops at once
# with the one command to run. One list for `make up`, `make test` and CI.
#   up:   a compose (docker compose v2 or docker-compose 1.29), debootstrap (the sandbox image)
#   test: busybox-static (the fast sandbox test image)
# Root installs with apt-get; anyone else gets the apt-get line to run.
# Usage: prereqs.sh up|test ...
set -euo pipefail
if ! out=$(docker version 2>&1 >/dev/null); then
  case $out in
    *"permission denied"*) echo "error: no permission to use Docker: add yourself to the docker group (sudo usermod -aG docker \$USER, then log in again)" >&2 ;;
    *) echo "error: Docker is not reachable; start the Docker engine (dockerd) and retry (${out%%$'\n'*})" >&2 ;;
  esac
  exit 1
fi
need=()
for what in "$@"; do
  case $what in
    up)
      docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
      command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
      ;;
    test)
      # A static busybox: the test image has no libc (ldd fails on a static binary).
      if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need+=(busybox-static); fi
      ;;
    *) echo "usage: prereqs.sh up|test ..." >&2; exit 2 ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing ${need[*]}; install with:" >&2
  echo "  sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]} with apt-get" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
