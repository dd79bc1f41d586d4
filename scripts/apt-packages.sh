# shellcheck shell=bash
# Sourced by the setup scripts: `ensure_packages WHO PACKAGE...` installs, with apt-get, the
# Debian packages that are not installed yet (and runs `apt-get update` only then).
ensure_packages() {
    local who="$1" missing=() package
    shift
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "$who: installing ${missing[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
