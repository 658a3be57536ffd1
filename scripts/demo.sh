#!/bin/sh
# The main job on a throw-away copy of the fixture site: a successful upgrade (3.9.0 -> 4.0.0),
# a failing one (4.0.2, whose smoke check fails) rolled back automatically, then the history.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
swift build --product molam-upgrade >/dev/null
bin="$(swift build --show-bin-path)/molam-upgrade"

site="$root/demo-site"
# Move an earlier demo aside rather than deleting it in place, then drop it.
if [ -e "$site" ]; then
    old="$site.old.$$"
    mv "$site" "$old"
    rm -rf "$old"
fi
mkdir -p "$site/wp-content/plugins" "$site/releases" "$site/state"
cp -a Fixtures/plugins/molam-form/3.9.0/molam-form "$site/wp-content/plugins/molam-form"
sqlite3 "$site/site.db" < Fixtures/site/site.sql

tar -C Fixtures/plugins/molam-form/4.0.0 -czf "$site/releases/molam-form-4.0.0.tar.gz" molam-form
(cd Fixtures/plugins/molam-form/4.0.2 && zip -qr "$site/releases/molam-form-4.0.2.zip" molam-form)
sha() { sha256sum "$1" | cut -d' ' -f1; }

mu() {
    "$bin" "$@" --plugin-dir "$site/wp-content/plugins/molam-form" --db "sqlite://$site/site.db" \
        --state-dir "$site/state"
}

echo "== upgrade to 4.0.0 (good release)"
mu upgrade --archive "$site/releases/molam-form-4.0.0.tar.gz" --sha256 "$(sha "$site/releases/molam-form-4.0.0.tar.gz")"

echo
echo "== upgrade to 4.0.2 (its smoke check fails: expect an automatic rollback and exit 1)"
status=0
mu upgrade --archive "$site/releases/molam-form-4.0.2.zip" --sha256 "$(sha "$site/releases/molam-form-4.0.2.zip")" \
    || status=$?
echo "exit status: $status"
if [ "$status" -ne 1 ]; then
    echo "demo: expected exit 1 (rolled back), got $status" >&2
    exit 1
fi

echo
echo "== status"
mu status
echo
echo "== history"
mu history
