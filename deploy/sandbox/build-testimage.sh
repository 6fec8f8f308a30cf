#!/usr/bin/env bash
# Builds moltbot-sandbox-test:latest: FROM scratch + static busybox + the exec
# agent, for fast tests. Idempotent: skips when the image exists unless FORCE=1.
# Usage (from the repo root): bash deploy/sandbox/build-testimage.sh
set -euo pipefail
IMAGE=${IMAGE:-moltbot-sandbox-test:latest}
AGENT_PATH=/usr/local/bin/moltbot-sandbox-agent
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

recipe=$(bash "$here/recipe.sh" "${BASH_SOURCE[0]}")
have=$(docker image inspect -f '{{index .Config.Labels "moltbot.sandbox.recipe"}}' "$IMAGE" 2>/dev/null || true)
if [[ "${FORCE:-0}" != 1 && "$have" == "$recipe" ]]; then
  echo "$IMAGE is up to date (recipe $recipe); skipping (FORCE=1 rebuilds)" >&2
  exit 0
fi
[[ -z "$have" ]] || echo "$IMAGE was built from another recipe ($have); rebuilding as $recipe" >&2
bash "$here/../prereqs.sh" test

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root"/{bin,etc,tmp,var/tmp,run,usr/local/bin} "$ctx/workspace" "$ctx/agent"
# Docker copies the image's mount point mode onto the tmpfs, so these decide
# whether the non-root user can write /tmp.
chmod 1777 "$root/tmp" "$root/var/tmp" "$root/run"
cp /bin/busybox "$root/bin/busybox"
# Same result as `busybox --install -s /bin`, done from the host.
for applet in $(/bin/busybox --list); do
  [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:10001:10001:sandbox:/tmp:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nsandbox:x:10001:\n' >"$root/etc/group"
bash "$here/build-agent.sh" "$root$AGENT_PATH"

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
# Docker copies the mount point's owner onto a new empty named volume: the
# workspace volumes (/workspace, /agent) must be writable by the sandbox user.
COPY --chown=10001:10001 workspace /workspace
COPY --chown=10001:10001 agent /agent
ENV PATH=/usr/local/bin:/bin HOME=/tmp
LABEL moltbot.sandbox.agent=$AGENT_PATH moltbot.sandbox.recipe=$recipe
USER 10001:10001
ENTRYPOINT ["$AGENT_PATH"]
DOCKERFILE
docker build -q -t "$IMAGE" "$ctx" >/dev/null
echo "built $IMAGE" >&2
