"""The reference workload of scripts/bench-reference.py, generated at bench time and cached.

A WooCommerce-sized molam-form: the fixture's own files plus generated PHP/JS/CSS text and
incompressible assets (images, fonts), as 3.9.0 (installed), 4.0.0 (a zip whose migration adds a
column, O(1) in SQLite) and a failing 4.0.0 (an extra command smoke check exits 1). Site databases
are the fixture site with its owned orders table grown to each size. A `done` file marks a complete
cache entry; an incomplete one is moved aside and made again.
"""
import hashlib, json, os, random, shutil, sqlite3, subprocess

PLUGIN = "molam-form"
WORDS = ("order payment gateway refund webhook cart checkout customer amount currency status token "
         "merchant invoice session nonce settings admin notice render template query meta product "
         "shipping tax coupon line item total subtotal fee discount address email phone country").split()


class Workload:
    def __init__(self, folder):
        self.folder = folder
        self.old_tree = os.path.join(folder, "old", PLUGIN)
        self.small_tree = os.path.join(folder, "small-old", PLUGIN)
        self.good_zip = os.path.join(folder, "molam-form-4.0.0.zip")
        self.failing_zip = os.path.join(folder, "molam-form-4.0.0-failing.zip")
        self.small_zip = os.path.join(folder, "molam-form-small-4.0.0.zip")
        self.small_db = os.path.join(folder, "site-small.db")
        self.databases = {}

    @property
    def good_sha(self):
        return sha256(self.good_zip)

    @property
    def failing_sha(self):
        return sha256(self.failing_zip)

    @property
    def small_sha(self):
        return sha256(self.small_zip)

    def describe(self):
        files = sum(len(names) for _, _, names in os.walk(self.old_tree))
        size = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(self.old_tree) for n in names)
        return {"files": files, "unpacked_bytes": size, "zip_bytes": os.path.getsize(self.good_zip),
                "databases": {str(k): os.path.getsize(v) for k, v in self.databases.items()}}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(folder, root, files, sizes, quick):
    fixture = os.path.join(root, "Fixtures/plugins", PLUGIN)
    key = "files%d-v2" % files
    plugin_folder = os.path.join(folder, key)
    work = Workload(plugin_folder)
    if not os.path.exists(os.path.join(plugin_folder, "done")):
        set_aside(plugin_folder)
        make_plugin(work, fixture, files, quick)
        open(os.path.join(plugin_folder, "done"), "w").close()
    for size in sizes:
        path = os.path.join(folder, "site-%dmib.db" % size)
        if not os.path.exists(path):
            make_database(path + ".tmp", os.path.join(root, "Fixtures/site/site.sql"), size)
            os.rename(path + ".tmp", path)
        work.databases[size] = path
    if not os.path.exists(work.small_db):
        make_database(work.small_db, os.path.join(root, "Fixtures/site/site.sql"), 0)
    return work


def set_aside(folder):
    if os.path.exists(folder):
        os.rename(folder, folder + ".old-%d" % os.getpid())
        shutil.rmtree(folder + ".old-%d" % os.getpid(), ignore_errors=True)


def make_plugin(work, fixture, files, quick):
    folder = work.folder
    os.makedirs(folder)
    generated = os.path.join(folder, "generated")
    generate_files(generated, files, quick)
    # 3.9.0: the fixture plus the generated files.
    assemble(os.path.join(fixture, "3.9.0", PLUGIN), generated, work.old_tree)
    # 4.0.0: the fixture's 4.0.0 with a cheap 0004 (ADD COLUMN with a default is O(1) in SQLite; the
    # fixture's UPDATE of every row would time the migration, not the agent), 10 % of files changed.
    new_tree = os.path.join(folder, "new", PLUGIN)
    assemble(os.path.join(fixture, "4.0.0", PLUGIN), generated, new_tree)
    migrations = os.path.join(new_tree, "migrations")
    with open(os.path.join(migrations, "0004_orders_add_currency.sql"), "w") as f:
        f.write("-- molam-form 0004: orders carry their currency.\n"
                "ALTER TABLE wp_molam_orders ADD COLUMN currency TEXT NOT NULL DEFAULT 'XOF';\n")
    with open(os.path.join(migrations, "0004_orders_add_currency.down.sql"), "w") as f:
        f.write("ALTER TABLE wp_molam_orders DROP COLUMN currency;\n")
    rng = random.Random(4)
    for directory, _, names in os.walk(os.path.join(new_tree, "vendor")):
        for name in names:
            if name.endswith(".php") and rng.random() < 0.1:
                with open(os.path.join(directory, name), "a") as f:
                    f.write("// 4.0.0: %s\n" % rng.choice(WORDS))
    zip_tree(new_tree, work.good_zip)
    # The failing 4.0.0: the same files, and a smoke check that exits 1.
    failing_tree = os.path.join(folder, "failing", PLUGIN)
    os.makedirs(os.path.dirname(failing_tree))
    subprocess.run(["cp", "-a", new_tree, failing_tree], check=True)
    with open(os.path.join(failing_tree, "bin", "checkout-smoke"), "w") as f:
        f.write("#!/bin/sh\necho 'smoke: checkout answers HTTP 500' >&2\nexit 1\n")
    os.chmod(os.path.join(failing_tree, "bin", "checkout-smoke"), 0o755)
    manifest_path = os.path.join(failing_tree, "molam-plugin.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["smoke"].append({"type": "command", "run": ["bin/checkout-smoke"], "timeout_s": 30})
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    zip_tree(failing_tree, work.failing_zip)
    # The small plugin: the fixture itself, 3.9.0 -> 4.0.0.
    os.makedirs(os.path.dirname(work.small_tree))
    subprocess.run(["cp", "-a", os.path.join(fixture, "3.9.0", PLUGIN), work.small_tree], check=True)
    zip_tree(os.path.join(fixture, "4.0.0", PLUGIN), work.small_zip)


def assemble(fixture_tree, generated, destination):
    os.makedirs(os.path.dirname(destination))
    subprocess.run(["cp", "-a", fixture_tree, destination], check=True)
    for name in os.listdir(generated):
        subprocess.run(["cp", "-a", os.path.join(generated, name), destination], check=True)


def zip_tree(tree, out):
    parent, name = os.path.split(tree)
    subprocess.run(["zip", "-qrX", os.path.abspath(out), name], cwd=parent, check=True)


def generate_files(folder, files, quick):
    """About 88 % text (PHP mostly; compresses 3-4x) and 12 % assets (random bytes)."""
    rng = random.Random(1)
    pool = []   # statements only: PHP's syntax check in `stage` compiles every file
    for _ in range(4000):
        a, b, c = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        pool.append(rng.choice([
            "        $%s_%s = $this->%s_%s( $%s, %d );" % (a, b, b, c, a, rng.randrange(10000)),
            "        if ( empty( $%s['%s'] ) ) { return new \\WP_Error( '%s_%s', __( 'Invalid %s %s.', 'molam-form' ) ); }"
            % (a, b, a, c, b, c),
            "        /* %s %s for the %s. */" % (a, b, c),
            "        $%s = apply_filters( 'molam_%s_%s', $%s, $%s );" % (a, a, b, c, a),
        ]))
    assets = max(1, files // 8)
    texts = files - assets - 16
    text_bytes = 0 if quick else 40 * 2**20
    asset_bytes = 0 if quick else 25 * 2**20
    for index in range(texts):
        package = "vendor/molam/pkg%02d/src/Module%02d" % (index % 40, (index // 40) % 10)
        extension = ".php" if index % 10 < 8 else (".js" if index % 10 == 8 else ".css")
        lines = max(10, int(rng.expovariate(1.0) * (text_bytes / texts if text_bytes else 2000) / 64))
        statements = rng.choices(pool, k=lines)
        if extension == ".php":
            body = "<?php\nnamespace Molam\\Pkg%02d;\n\nfinal class Generated%d {\n" % (index % 40, index)
            for method in range(0, len(statements), 12):
                body += "    public function step%d( array $args ) {\n" % method
                body += "\n".join(statements[method:method + 12]) + "\n        return $args;\n    }\n"
            body += "}\n"
        else:
            body = "\n".join(statements) + "\n"
        write(os.path.join(folder, package), "class-%s-%d%s" % (rng.choice(WORDS), index, extension), body.encode())
    for index in range(assets):
        kind = ["images", "fonts"][index % 2]
        size = max(256, int(rng.expovariate(1.0) * (asset_bytes / assets if asset_bytes else 4000)))
        extension = ".png" if kind == "images" else ".woff2"
        write(os.path.join(folder, "assets", kind, "set%02d" % (index % 12)), "asset-%d%s" % (index, extension),
              rng.randbytes(size))


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def make_database(path, site_sql, mib):
    """The fixture site, its owned orders table grown until the file holds `mib` MiB."""
    if os.path.exists(path):
        os.unlink(path)
    con = sqlite3.connect(path, isolation_level=None)
    with open(site_sql) as sql:
        con.executescript(sql.read())
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    rng = random.Random(7)
    statuses = ["paid", "paid", "paid", "failed", "pending", "cancelled", "refunded"]
    done = 0
    while page_bytes(con) < mib * 2**20:
        batch = 50_000
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO wp_molam_orders (order_ref, amount_minor, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (("BENCH-%010d-%08x" % (done + i, rng.getrandbits(32)), rng.randrange(100, 500000),
              rng.choice(statuses), "2025-%02d-%02dT%02d:%02d:00Z" % (1 + i % 12, 1 + i % 28, i % 24, i % 60),
              "2025-%02d-%02dT%02d:%02d:30Z" % (1 + i % 12, 1 + i % 28, i % 24, i % 60))
             for i in range(batch)))
        con.execute("COMMIT")
        done += batch
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()


def page_bytes(con):
    return con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
