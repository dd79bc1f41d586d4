#!/usr/bin/env bash
# Makes the real services answer on a Debian 12 machine (as root): a Docker Engine (Debian's
# docker.io; started when `docker info` fails, reused when it answers) and a registry (Debian's
# docker-registry) on a loopback port with the project's own config.
#
#   scripts/services.sh         docker + the registry on 127.0.0.1:${ENVREPO_REGISTRY_PORT:-5000}
#
# The tests start registries of their own from the same config template (tests/registries.py).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${ENVREPO_STATE:-$PWD/.state}"

# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh
need_packages() {
    local wanted=(docker-registry debootstrap debian-archive-keyring curl apache2-utils)
    # A Docker Engine that is there already (Docker CE on GitHub's Ubuntu runners) is used as
    # it is; Debian's docker.io comes only where there is none.
    command -v docker >/dev/null || wanted+=(docker.io)
    ensure_packages services "${wanted[@]}"
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    mkdir -p "$STATE"
    echo "services: starting dockerd (log: $STATE/dockerd.log)" >&2
    nohup /usr/sbin/dockerd >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    echo "services: dockerd did not answer within 60 s; see $STATE/dockerd.log" >&2
    tail -20 "$STATE/dockerd.log" >&2
    exit 1
}

start_registry() {
    local port="$1" root="$2"
    mkdir -p "$root/data"
    if curl -fs -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null | grep -qE '200|401'; then
        return
    fi
    local template
    template="$(cat scripts/registry.yml.in)"
    template="${template//@PORT@/$port}"
    template="${template//@ROOT@/$root}"
    template="${template//@TLS@/}"
    printf '%s\n' "${template//@AUTH@/}" >"$root/config.yml"
    nohup docker-registry serve "$root/config.yml" >"$root/registry.log" 2>&1 &
    echo $! >"$root/registry.pid"
    for _ in $(seq 1 50); do
        if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" | grep -qE '200|401'; then
            return
        fi
        sleep 0.2
    done
    echo "services: the registry on port $port did not answer; see $root/registry.log" >&2
    tail -20 "$root/registry.log" >&2
    exit 1
}

case "${1:-up}" in
    up)
        need_packages
        start_docker
        start_registry "${ENVREPO_REGISTRY_PORT:-5000}" "$STATE/registry"
        echo "services: docker and the registry on 127.0.0.1:${ENVREPO_REGISTRY_PORT:-5000} answer" >&2
        ;;
    *)
        echo "usage: scripts/services.sh [up]" >&2
        exit 2
        ;;
esac
