#!/bin/sh
# Installs what the live-payment test site runs on, only if a package is missing:
# MariaDB, PHP CLI with mysqli, Debian's WordPress and curl, with their services kept stopped
# (see scripts/apt-install-missing.sh).
set -eu
exec sh "$(dirname "$0")/../apt-install-missing.sh" mariadb-server php-cli php-mysql wordpress curl
