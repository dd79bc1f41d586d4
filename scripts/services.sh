#!/usr/bin/env bash
# Makes the real services answer on a Debian 12 or 13 machine (as root): a Docker Engine (one
# that answers is reused; else an installed dockerd is started; else Debian's docker.io is
# installed and started) and a registry (Debian's docker-registry) on a loopback port with the
# project's own config.
#
#   scripts/services.sh                  docker + the registry on 127.0.0.1:${ENVREPO_REGISTRY_PORT:-5000}
#   scripts/services.sh docker-decision  print use, start or install: what up does for Docker
#
# The tests start registries of their own from the same config template (tests/registries.py).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${ENVREPO_STATE:-$PWD/.state}"

# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh
# What it takes to get a Docker Engine that answers, decided by what answers and what is
# installed, never by which client is first on PATH (a machine may carry a client alone):
#   use      a daemon answers already (Docker CE on GitHub's runners, one started before)
#   start    no daemon answers, but dockerd is installed: start it
#   install  no dockerd on this machine: install Debian's docker.io, then start it
docker_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# dockerd is looked for on PATH and in the folders where packages put it (root's PATH may
# lack the sbin folders under sudo or in CI); ENVREPO_DOCKERD_PATH replaces those folders.
find_dockerd() {
    local folders="${ENVREPO_DOCKERD_PATH-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"
    PATH="$PATH${folders:+:$folders}" command -v dockerd
}

docker_decision() {
    if docker_answers; then
        echo use
    elif find_dockerd >/dev/null; then
        echo start
    else
        echo install
    fi
}

need_packages() {
    local wanted=(docker-registry debootstrap debian-archive-keyring curl apache2-utils)
    [[ "$(docker_decision)" == install ]] && wanted+=(docker.io)
    ensure_packages services "${wanted[@]}"
}

start_docker() {
    docker_answers && return
    local dockerd
    if ! dockerd="$(find_dockerd)"; then
        echo "services: no dockerd after installing docker.io; install a Docker Engine and run this again" >&2
        exit 1
    fi
    mkdir -p "$STATE"
    echo "services: starting $dockerd (log: $STATE/dockerd.log)" >&2
    nohup "$dockerd" >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        docker_answers && return
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
    docker-decision)
        # What `up` would do to get a Docker Engine, without doing it (the tests read it).
        docker_decision
        ;;
    *)
        echo "usage: scripts/services.sh [up|docker-decision]" >&2
        exit 2
        ;;
esac
