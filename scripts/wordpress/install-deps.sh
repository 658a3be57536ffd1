#!/bin/sh
# Installs what the live-payment test site runs on, only if a package is missing:
# MariaDB, PHP CLI with mysqli, Debian's WordPress and curl. The packages' services (MariaDB,
# and the apache2 that `wordpress` pulls in) must not start: the harness runs its own private
# mariadbd and `php -S` on loopback. A policy-rc.d that exits 101 ("action forbidden") keeps
# invoke-rc.d from starting them; it is removed afterwards only if this script created it.
set -eu
packages="mariadb-server php-cli php-mysql wordpress curl"
missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -n "$missing" ] || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Written by molam-upgrade scripts/wordpress/install-deps.sh while it installs packages.\nexit 101\n' \
        | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    created_policy=yes
fi
cleanup() {
    [ -z "$created_policy" ] || $sudo rm -f "$policy"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "installing Debian packages:$missing (services kept stopped)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
