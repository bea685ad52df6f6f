#!/usr/bin/env bash
# The main job: sandbox Asterisk + callcenterd + simulated inbound traffic.
# Usage: sudo bash scripts/demo.sh [--duration S] [--rate CALLS_PER_MIN] [--seed N]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
exec .venv/bin/callcenterd demo "$@"
