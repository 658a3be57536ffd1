#!/bin/sh
# Installs the Debian packages molam-upgrade builds, tests and demos with, only if one is missing.
# Swift itself is not a Debian package: a Swift 6 toolchain must already be on PATH.
set -eu
packages="libcurl4-openssl-dev libarchive-dev libsqlite3-dev libssl-dev pkg-config zip unzip zstd sqlite3 tar python3 php-cli"
missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "error: no Swift toolchain on PATH; install Swift 6 from swift.org and try again" >&2
    exit 2
fi
