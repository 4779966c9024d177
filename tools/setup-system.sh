#!/usr/bin/env bash
# Make sure Debian's GNU Radio 3.10 (and the few system tools the project uses) are present.
# Skips apt entirely when /usr/bin/python3 already imports gnuradio and the tools exist,
# so a second `make` run touches nothing.
set -euo pipefail

APT_PACKAGES=(gnuradio gnuradio-dev python3-venv cmake gcc xz-utils bzip2 zstd brotli)

have_all() {
    /usr/bin/python3 -c 'from gnuradio import gr, digital, channels, pdu' 2>/dev/null || return 1
    /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || return 1
    for tool in cmake gcc grcc xz bzip2 zstd brotli; do  # gcc: the native BP kernel (lib/)
        command -v "$tool" >/dev/null || return 1
    done
}

if have_all; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    cat >&2 <<MSG
genjscc: GNU Radio 3.10 (or a system tool) is missing and this is not root.
  Install it once, then run make again:
    sudo apt-get update && sudo apt-get install -y ${APT_PACKAGES[*]}
MSG
    exit 1
fi

echo "genjscc: installing Debian packages: ${APT_PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
have_all || { echo "genjscc: apt finished but gnuradio still does not import in /usr/bin/python3" >&2; exit 1; }
