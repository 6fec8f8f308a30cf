#!/usr/bin/env bash
# Builds moltbot-sandbox:latest from a Debian bookworm minbase rootfs
# (debootstrap + docker import) with a non-root user and the exec agent.
# Idempotent: skips when the image exists from the same recipe (recipe.sh) unless FORCE=1. Needs root (debootstrap).
# Usage (from the repo root): bash deploy/sandbox/build-image.sh
set -euo pipefail
IMAGE=${IMAGE:-moltbot-sandbox:latest}
SUITE=${SUITE:-bookworm}
AGENT_PATH=/usr/local/bin/moltbot-sandbox-agent
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

recipe=$(bash "$here/recipe.sh" "${BASH_SOURCE[0]}")
have=$(docker image inspect -f '{{index .Config.Labels "moltbot.sandbox.recipe"}}' "$IMAGE" 2>/dev/null || true)
if [[ "${FORCE:-0}" != 1 && "$have" == "$recipe" ]]; then
  echo "$IMAGE is up to date (recipe $recipe); skipping (FORCE=1 rebuilds)" >&2
  exit 0
fi
[[ -z "$have" ]] || echo "$IMAGE was built from another recipe ($have); rebuilding as $recipe" >&2
bash "$here/../prereqs.sh" up
if [ "$(id -u)" -ne 0 ]; then
  echo "error: debootstrap needs root to build $IMAGE; run: sudo make sandbox-image" >&2
  exit 1
fi

# The Debian mirror this host already uses (one-line or deb822 sources).
mirror=${MIRROR:-}
if [[ -z "$mirror" ]]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:\/\//) {print $i; exit}}' || true)
fi
if [[ -z "$mirror" ]]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ && $2 !~ /security/ && $2 ~ /debian/ {print $2; exit}' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "debootstrap --variant=minbase $SUITE from $mirror" >&2
# On a terminal every package is shown as it comes (a few minutes the first
# time); otherwise only the tail of the log on failure.
if [ -t 1 ]; then
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" 2>&1 | tee "$work/debootstrap.log" || {
    echo "error: debootstrap failed (log above)" >&2
    exit 1
  }
else
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    echo "error: debootstrap failed (log above)" >&2
    exit 1
  }
fi
echo "debootstrap done; importing $IMAGE" >&2
chroot "$root" /usr/sbin/groupadd -g 10001 sandbox
chroot "$root" /usr/sbin/useradd -u 10001 -g 10001 -d /tmp -s /bin/bash -M sandbox
mkdir -p "$root/workspace" "$root/agent" "$root/usr/local/bin"
# Docker copies the mount point's owner onto a new empty named volume: the
# workspace volumes (a session's at /workspace, the agent's at /workspace
# or /agent) must be writable by the sandbox user.
chown 10001:10001 "$root/workspace" "$root/agent"
# Docker copies the mount point's mode onto the tmpfs mounted there.
chmod 1777 "$root/tmp" "$root/var/tmp" "$root/run"
bash "$here/build-agent.sh" "$root$AGENT_PATH"

tar -C "$root" -c \
  --exclude=./var/cache/apt --exclude=./var/lib/apt/lists \
  --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/info \
  --exclude=./usr/share/locale --exclude=./usr/share/i18n/locales \
  --exclude=./proc --exclude=./sys --exclude=./dev \
  . | docker import \
  --change 'USER 10001:10001' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV HOME=/tmp' \
  --change "LABEL moltbot.sandbox.agent=$AGENT_PATH" \
  --change "LABEL moltbot.sandbox.recipe=$recipe" \
  --change "ENTRYPOINT [\"$AGENT_PATH\"]" \
  - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
