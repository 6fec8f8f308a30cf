#!/usr/bin/env bash
# Builds the static exec agent into $1 (used by the image scripts).
set -euo pipefail
out=${1:?usage: build-agent.sh OUTPUT}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
(cd "$repo/sandboxd" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out" ./cmd/moltbot-sandbox-agent)
