#!/bin/sh
# Installs the Debian packages named as arguments, only those not installed yet, without starting
# any service they ship (mariadb-server's, or the apache2 that `wordpress` pulls in): tests and the
# live-payment harness run their own private mariadbd and `php -S`. A policy-rc.d that exits 101
# ("action forbidden", invoke-rc.d(8)) keeps invoke-rc.d from starting them; it is removed
# afterwards only if this script created it. Shared by scripts/install-deps.sh and
# scripts/wordpress/install-deps.sh.
set -eu
missing=""
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -n "$missing" ] || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Written by molam-upgrade scripts/apt-install-missing.sh while it installs packages.\nexit 101\n' \
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
