#!/usr/bin/env bash
# Install what Cephalo needs to build, run and test on Debian 12, and nothing else.
#
# Checks every package with dpkg-query first and skips apt entirely when all are present, so re-runs are fast.
# Runs non-interactively; needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libh2o-evloop-dev libjansson-dev libsqlite3-dev libmicrohttpd-dev libssl-dev libcmocka-dev libargon2-dev libjwt-dev libcurl4-openssl-dev
    libhiredis-dev redis-server
    python3-pytest python3-h2 python3-cryptography python3-jwt python3-websockets nginx-light curl openssl ca-certificates
    wrk nghttp2-client
    wkhtmltopdf libmd4c-dev libmd4c-html0-dev poppler-utils docker-compose
    chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # Any nginx flavour (nginx-core, nginx-full...) will do; they conflict with each other.
    if [[ "$pkg" == nginx-light ]] && command -v nginx >/dev/null 2>&1; then
        continue
    fi
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

# The browser tests' node modules (playwright-core, pinned by tests/browser/package-lock.json), once.
browser_modules() {
    local dir
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
    if [[ -f "$dir/package-lock.json" && ! -d "$dir/node_modules/playwright-core" ]]; then
        if ! command -v npm >/dev/null 2>&1; then
            echo "deps: no npm (install Node.js >= 18 with npm) - the browser tests will be skipped" >&2
            return 0
        fi
        echo "deps: npm ci --prefix tests/browser"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
    fi
}

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all ${#PACKAGES[@]} packages already installed"
    browser_modules
    exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "deps: missing packages and not root (no sudo): ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
browser_modules
