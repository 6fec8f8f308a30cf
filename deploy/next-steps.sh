#!/usr/bin/env bash
# What to do after `make up`: printed by it.
# Usage: next-steps.sh BUNDLE_DIR PORT COMPOSE [POINTER]
# With POINTER (the stack file make up wrote) the CLI finds the stack
# itself, so no export is printed.
set -euo pipefail
bundle=$(cd "${1:?bundle dir}" && pwd)
port=${2:-18789}
compose=${3:-docker-compose}
ptr=${4:-}
env=""
if [ -z "$ptr" ]; then
  env="  export MOLTBOT_STATE_DIR=$bundle"$'\n'
  [ "$port" = 18789 ] || env+="  export MOLTBOT_GATEWAY=127.0.0.1:$port"$'\n'
fi
cat <<TEXT

The stack is up. Use the CLI from the host:
$env  ./bin/moltbot status --all                           # every service, token, keys, sandbox, channels
  ./bin/moltbot security audit --deep --min-score 100   # the score (a fresh stack scores 100)
  ./bin/moltbot doctor                                  # the stack's state, a fix for anything wrong
  ./bin/moltbot ui                                      # the Control UI's URL (approve the browser: moltbot devices approve)
or inside the stack's network:
  $compose run --rm cli status

Name yourself the owner (only the owner's own ids reach the main session):
  Telegram: DM the bot, then: ./bin/moltbot pairing approve telegram <code> --owner
  local channel: ./bin/moltbot config set channels.local.owner '["<your name>"]'

Connect Telegram (README, "Connect Telegram"):
  ./bin/moltbot config set channels.telegram.botToken -  # paste the token from @BotFather, Ctrl-D; stored encrypted
  ./bin/moltbot gateway restart
Try it offline first with the fake Bot API: $compose --profile demo up -d faketelegram (README)
TEXT
