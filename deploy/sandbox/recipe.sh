#!/usr/bin/env bash
# Prints a short hash of what a sandbox image is built from: the image
# script given as $1, the agent build script and the agent's Go sources.
# The image scripts label their image with it and rebuild when it differs,
# so an image from an older recipe (say, a root-owned /workspace) is never
# silently kept. Usage: recipe.sh IMAGE-SCRIPT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
{
  cat "$1" "$here/build-agent.sh"
  find "$repo/sandboxd/cmd/moltbot-sandbox-agent" "$repo/sandboxd/internal/agent" "$repo/sandboxd/internal/agentproto" \
    -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs cat
  cat "$repo/sandboxd/go.mod"
} | sha256sum | cut -c1-16
