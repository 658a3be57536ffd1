"""Releases of the molam-form fixture, built at run time from Fixtures/wordpress/molam-form/.

The template is a working plugin at version 0.0.0: a release replaces "0.0.0" and "0_0_0" (the
per-release function name of the lazily loaded payment code) and may break itself on purpose.
Every file is written anew, so each release has fresh mtimes, and zipped with one top directory.

The plugin owns `{prefix}molam_orders` in the shop's MariaDB; a release carries the migrations of
its schema level (migrations/NNNN_name.sql, with NNNN_name.down.sql) and writes the columns they add:
  1: 0001_orders (the table as activation creates it; the initial 3.9.0 only)
  2: + 0002_order_channel (column `channel`, written 'rest'): every good release
  3: + 0003_order_risk_score (column `risk_score` and an index): the rollback scenario's upgrades and
     every broken release, so that each swapped-in one leaves a schema change to roll back.
"""

import hashlib
import os
import stat
import time
import zipfile

PLUGIN = "molam-form"

# kind → what it breaks; the agent must roll each of these back.
BROKEN_KINDS = ("syntax-main", "syntax-lazy", "runtime-fatal", "smoke-fail", "migration-fail")
# The agent's step each broken kind must fail at: the first three are refused before the swap (exit 4),
# the last two are swapped in, fail, and are rolled back (exit 1).
FAILS_AT = {"syntax-main": "stage", "syntax-lazy": "stage", "runtime-fatal": "stage", "smoke-fail": "verify",
            "migration-fail": "migrate"}
SCHEMAS = (1, 2, 3)
# Schema level → the migrations (by number) a release carries, and the columns its code writes.
MIGRATIONS = {1: ("0001",), 2: ("0001", "0002"), 3: ("0001", "0002", "0003")}
COLUMNS = {1: {}, 2: {"channel": "'rest'"}, 3: {"channel": "'rest'", "risk_score": "12"}}
# What the orders table of each level has (checked by the harness after every run).
TABLE_COLUMNS = {1: set(), 2: {"channel"}, 3: {"channel", "risk_score"}}

# migration-fail: a fourth migration whose first statement works and whose second fails (MariaDB
# runs DDL outside transactions, so the table is left half-migrated for the rollback to undo).
FAILING_MIGRATION = """-- Built to fail: the column is added, then the UPDATE names a column that does not exist.
ALTER TABLE `{prefix}molam_orders` ADD COLUMN risk_note VARCHAR(64) NULL;
UPDATE `{prefix}molam_orders` SET risk_note = CONCAT('score ', risk_scor) WHERE id = 0;
"""


class Release:
    def __init__(self, version, kind, flavour, tree, archive, sha256, schema):
        self.version = version
        self.kind = kind
        self.flavour = flavour
        self.schema = schema
        self.tree = tree
        self.archive = archive
        self.sha256 = sha256


class ReleaseFactory:
    def __init__(self, repo, out_dir, table_prefix):
        self.template = os.path.join(repo, "Fixtures", "wordpress", PLUGIN)
        self.out_dir = out_dir
        self.table_prefix = table_prefix
        self.count = 0

    def build(self, version, site_url, kind="good", flavour="lazy", schema=None):
        """kind: "good" or one of BROKEN_KINDS; flavour: "lazy" (payment code required inside the
        payment callback) or "eager" (also required when the main file loads); schema: 1, 2 or 3
        (default: 2 for a good release, 3 for a broken one)."""
        if kind != "good" and kind not in BROKEN_KINDS:
            raise ValueError(f"unknown release kind {kind}")
        if schema is None:
            schema = 2 if kind == "good" else 3
        if schema not in SCHEMAS:
            raise ValueError(f"unknown schema level {schema}")
        self.count += 1
        top = os.path.join(self.out_dir, f"{self.count:04d}-{version}-{kind}-{flavour}")
        tree = os.path.join(top, PLUGIN)
        os.makedirs(tree)
        function_suffix = version.replace(".", "_").replace("-", "_")
        for folder, _, files in os.walk(self.template):
            relative = os.path.relpath(folder, self.template)
            target_folder = os.path.normpath(os.path.join(tree, relative))
            os.makedirs(target_folder, exist_ok=True)
            for name in files:
                if relative == "migrations" and name[:4] not in MIGRATIONS[schema]:
                    continue
                source = os.path.join(folder, name)
                with open(source) as f:
                    text = f.read()
                text = text.replace("0.0.0", version).replace("0_0_0", function_suffix)
                text = text.replace("{site_url}", site_url)
                text = self._schema(os.path.join(relative, name), text, schema)
                text = self._break(os.path.join(relative, name), text, kind, flavour)
                target = os.path.join(target_folder, name)
                with open(target, "w") as f:
                    f.write(text)
                os.chmod(target, 0o755 if os.stat(source).st_mode & stat.S_IXUSR else 0o644)
        if kind == "migration-fail":
            with open(os.path.join(tree, "migrations", "0004_order_risk_note.sql"), "w") as f:
                f.write(FAILING_MIGRATION)
        archive = os.path.join(self.out_dir, f"{PLUGIN}-{version}-{kind}-{flavour}-{self.count:04d}.zip")
        self._zip(top, archive)
        with open(archive, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        return Release(version, kind, flavour, tree, archive, sha256, schema)

    def _schema(self, relative, text, schema):
        """The columns the code writes and the manifest's `sql` check, for this schema level."""
        relative = os.path.normpath(relative)
        if relative == os.path.join("includes", "pay-charge.php"):
            columns = ", ".join(f"'{name}' => {value}" for name, value in COLUMNS[schema].items())
            text = text.replace("$extra = array(); // molam:columns", f"$extra = array( {columns} );")
        elif relative == "molam-plugin.json":
            # A read-only query that fails unless the table has this level's newest column. The agent
            # resolves {prefix} in `tables` and migrations but not in `sql` checks: written out here.
            column = {1: "*", 2: "channel", 3: "risk_score"}[schema]
            text = text.replace("{orders_check}", f"SELECT count({column}) FROM {self.table_prefix}molam_orders")
        return text

    @staticmethod
    def _break(relative, text, kind, flavour):
        relative = os.path.normpath(relative)
        if relative == "molam-form.php":
            if flavour == "eager":
                text = text.replace("/* molam:eager */", "require_once __DIR__ . '/includes/pay-charge.php';")
            if kind == "syntax-main":
                text += "\nfunction molam_form_unfinished( {\n"
            elif kind == "runtime-fatal":
                # Loads, serves the version route, but every payment (and the GET dry run) fatals.
                text = text.replace("\t$order_id = molam_charge_",
                                    "\tmolam_capture_funds( $amount, $currency );\n\t$order_id = molam_charge_", 1)
        elif relative == os.path.join("includes", "pay-charge.php") and kind == "syntax-lazy":
            text = text.replace("\tglobal $wpdb;", "\tglobal $wpdb\n\t$unfinished = array(;", 1)
        elif relative == os.path.join("bin", "smoke") and kind == "smoke-fail":
            text = text.replace("# molam:smoke-extra",
                                'fail "gateway self-test failed (release built to fail its smoke check)"')
        return text

    @staticmethod
    def _zip(top, archive):
        now = time.localtime()[:6]
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for folder, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(folder, name)
                    relative = os.path.relpath(path, top)
                    is_dir = os.path.isdir(path)
                    info = zipfile.ZipInfo(relative + ("/" if is_dir else ""), date_time=now)
                    info.create_system = 3
                    mode = os.stat(path).st_mode
                    info.external_attr = (stat.S_IMODE(mode) | (stat.S_IFDIR if is_dir else stat.S_IFREG)) << 16
                    if is_dir:
                        info.external_attr |= 0x10
                        out.writestr(info, b"")
                    else:
                        info.compress_type = zipfile.ZIP_DEFLATED
                        with open(path, "rb") as f:
                            out.writestr(info, f.read())
