#!/bin/sh
# Installs the Debian packages molam-upgrade builds, tests and demos with, only if one is missing.
# The tests start a private MariaDB server (mariadb-server), never the package's own service
# (see scripts/apt-install-missing.sh).
# Swift itself is not a Debian package: a Swift 6 toolchain must already be on PATH.
set -eu
sh "$(dirname "$0")/apt-install-missing.sh" \
    libcurl4-openssl-dev libarchive-dev libsqlite3-dev libssl-dev libmariadb-dev pkg-config \
    zip unzip zstd sqlite3 tar python3 php-cli mariadb-server
if ! command -v swift >/dev/null 2>&1; then
    echo "error: no Swift toolchain on PATH; install Swift 6 from swift.org and try again" >&2
    exit 2
fi
