#!/bin/sh
# stack-pointer.sh POINTER BUNDLE_DIR GATEWAY_ADDR: record the stack `make up`
# started, so the CLI finds its bundle and address from anywhere without
# MOLTBOT_STATE_DIR (cli/internal/cmdutil/locate.go reads it). An empty
# POINTER (make test-e2e) leaves the operator's pointer alone.
set -eu
ptr=$1 bundle=$2 addr=$3
[ -n "$ptr" ] || exit 0
bundle=$(cd "$bundle" && pwd)
dir=$(dirname "$ptr")
mkdir -p "$dir" && chmod 700 "$dir"
umask 077
tmp=$(mktemp "$dir/.stack.json.XXXXXX")
printf '{\n  "bundle_dir": "%s",\n  "gateway": "%s"\n}\n' "$bundle" "$addr" >"$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$ptr"
echo "  (the CLI finds this stack from anywhere: $ptr names $bundle)"
