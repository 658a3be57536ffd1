"""The MySQL rows of scripts/bench-reference.py (issue 13): the reference workload's plugin with its
owned tables in MariaDB instead of SQLite.

A private mariadbd (as scripts/wordpress/shop.py starts one: `mariadb-install-db --no-defaults`,
root without a password, unix socket only, `--innodb-buffer-pool-size=256M`) runs in the bench's
work directory for the MySQL part and is stopped at its end. No Python MySQL driver is needed: SQL
goes through the `mariadb` client (Debian's mariadb-server, installed by `make deps`).

- Plugin: the cached 5,000-file trees of bench_workload.py with MySQL migrations instead of the
  SQLite ones (0001/0002 installed, 4.0.0's 0003 creates the refunds table and 0004 adds a column,
  INSTANT in MariaDB), zipped as a good and a failing (smoke check exits 1) 4.0.0; cached.
- Tables: a seed database `bench_seed` whose orders table is grown (server side, from the Sequence
  engine's seq_1_to_N: no rows cross the client) until the owned tables' .ibd files hold the size
  asked for; each run gets a fresh copy (`shop_<n>`, INSERT … SELECT), dropped afterwards. Before
  anything is timed, InnoDB's dirty pages are flushed and the disk synced.
- Failing upgrade with a live writer: a long-running `mariadb` client reads INSERTs from stdin,
  one order every ~3 ms, each followed by `SELECT ROW_COUNT()`; an order is acknowledged when that
  answers 1. After the automatic rollback: the window (`rollbacks.duration_ms`) and the `rollback`
  step's duration from the journal, and which acknowledged orders are missing from the orders table.
  With --mysql-statement-log, every statement is logged (slow log, long_query_time = 0, as a table)
  during the failing runs, and those of the agent inside the rollback window are kept: where the
  window's time goes (the logging itself adds a little to it).
- Successful upgrade: wall time, peak RSS (the agent's own VmHWM and wait4's ru_maxrss).
"""
import hashlib, os, shutil, sqlite3, subprocess, sys, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordpress"))
import shop  # noqa: E402  (its private mariadbd)

PLUGIN = "molam-form"
OWNED = ("wp_molam_orders", "wp_molam_settings")

# Installed by 3.2.0 / 3.9.0 (the ledger holds their SHA-256), shipped unchanged by 4.0.0.
OLD_MIGRATIONS = {
    "0001_create_orders.sql": """-- molam-form 0001: the orders Molam has seen for this shop (MySQL).
CREATE TABLE wp_molam_orders (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_ref    VARCHAR(64)     NOT NULL,
    amount_minor BIGINT          NOT NULL CHECK (amount_minor >= 0),
    status       VARCHAR(20)     NOT NULL DEFAULT 'pending',
    created_at   DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at   DATETIME        NULL ON UPDATE CURRENT_TIMESTAMP,
    UNIQUE KEY wp_molam_orders_ref (order_ref),
    KEY wp_molam_orders_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
""",
    "0002_create_settings.sql": """-- molam-form 0002: plugin settings that must not live in wp_options (MySQL).
CREATE TABLE wp_molam_settings (
    `key`   VARCHAR(191) NOT NULL PRIMARY KEY,
    `value` TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT INTO wp_molam_settings (`key`, `value`) VALUES ('store_currency', 'XOF'), ('webhook_cursor', '');
""",
}
NEW_MIGRATIONS = dict(OLD_MIGRATIONS, **{
    "0003_create_refunds.sql": """-- molam-form 0003: refunds issued from the WooCommerce order screen (4.0.0, MySQL).
CREATE TABLE wp_molam_refunds (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id     BIGINT UNSIGNED NOT NULL,
    refund_ref   VARCHAR(64)     NOT NULL,
    amount_minor BIGINT          NOT NULL CHECK (amount_minor > 0),
    reason       VARCHAR(255)    NOT NULL DEFAULT '',
    status       VARCHAR(20)     NOT NULL DEFAULT 'pending',
    created_at   DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY wp_molam_refunds_ref (refund_ref),
    KEY wp_molam_refunds_order (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
""",
    "0003_create_refunds.down.sql": "DROP TABLE wp_molam_refunds;\n",
    # ADD COLUMN with a default is INSTANT in MariaDB >= 10.3: the migration is not what is timed.
    "0004_orders_add_currency.sql": "-- molam-form 0004: orders carry their currency (MySQL).\n"
                                    "ALTER TABLE wp_molam_orders ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'XOF';\n",
    "0004_orders_add_currency.down.sql": "ALTER TABLE wp_molam_orders DROP COLUMN currency;\n",
})
LEDGER = """CREATE TABLE molam_schema_migrations(
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    checksum CHAR(64) NOT NULL,
    applied_at VARCHAR(32) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"""


class HarnessError(Exception):
    pass


# --- the server ------------------------------------------------------------------------------------

class MariaDB(shop.MariaDB):
    """The live-payment test's private mariadbd (scripts/wordpress/shop.py), with root logging in
    without a password from any OS user and a buffer pool that holds the 100 MiB workload."""

    def __init__(self, root):
        super().__init__(root, root_auth="normal", server_options=("--innodb-buffer-pool-size=256M",))
        self.user = "root"

    def start(self):
        self.start_server()
        self.version = self.sql("SELECT VERSION()")[0][0]

    def client(self, database=None, *options):
        command = ["mariadb", "--no-defaults", "--socket=" + self.socket, "-u", self.user, "-N", "-B", *options]
        return command + ([database] if database else [])

    def sql(self, statements, database=None, timeout=600):
        """Runs SQL (given as -e text, or piped when long) as root; returns the rows."""
        result = subprocess.run(self.client(database), input=statements, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise HarnessError("mariadb: %s" % result.stderr.strip()[-2000:])
        return [line.split("\t") for line in result.stdout.splitlines()]

    def dsn(self, database):
        return "mysql://root@localhost/%s?socket=%s" % (database, self.socket)

    def owned_bytes(self, database):
        return sum(os.path.getsize(os.path.join(self.datadir, database, table + ".ibd")) for table in OWNED)

    def quiesce(self, timeout=90):
        """Dirty pages flushed and the disk synced: the load's writeback must not land in a timing."""
        old = self.sql("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")[0][0]
        self.sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                dirty = int(self.sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")[0][1])
                if dirty < 64:
                    break
                time.sleep(0.25)
        finally:
            self.sql("SET GLOBAL innodb_max_dirty_pages_pct = %s" % old)
        subprocess.run(["sync"], check=True)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the workload ----------------------------------------------------------------------------------

class Releases:
    """The cached 3.9.0 tree and 4.0.0 zips (good and failing) with MySQL migrations."""

    def __init__(self, folder):
        self.folder = folder
        self.old_tree = os.path.join(folder, "old", PLUGIN)
        self.good_zip = os.path.join(folder, "molam-form-4.0.0-mysql.zip")
        self.failing_zip = os.path.join(folder, "molam-form-4.0.0-mysql-failing.zip")

    def sha(self, path):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


def prepare_releases(work, files):
    """From bench_workload's trees (work.folder holds old/, new/ and failing/)."""
    import bench_workload
    folder = os.path.join(os.path.dirname(work.folder), "mysql-files%d-v1" % files)
    releases = Releases(folder)
    if os.path.exists(os.path.join(folder, "done")):
        return releases
    bench_workload.set_aside(folder)
    os.makedirs(folder)
    for kind, migrations, zipped in (("old", OLD_MIGRATIONS, None), ("new", NEW_MIGRATIONS, releases.good_zip),
                                     ("failing", NEW_MIGRATIONS, releases.failing_zip)):
        tree = os.path.join(folder, kind, PLUGIN)
        os.makedirs(os.path.dirname(tree))
        subprocess.run(["cp", "-a", os.path.join(work.folder, kind, PLUGIN), tree], check=True)
        directory = os.path.join(tree, "migrations")
        shutil.rmtree(directory)
        os.makedirs(directory)
        for name, text in migrations.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        if zipped:
            bench_workload.zip_tree(tree, zipped)
    open(os.path.join(folder, "done"), "w").close()
    return releases


def schema_sql():
    ledger = "".join("INSERT INTO molam_schema_migrations VALUES (%d, '%s', '%s', '2025-01-06T10:00:00Z');\n"
                     % (int(name[:4]), name[5:-4], hashlib.sha256(text.encode()).hexdigest())
                     for name, text in sorted(OLD_MIGRATIONS.items()))
    return "".join(OLD_MIGRATIONS[name] for name in sorted(OLD_MIGRATIONS)) + LEDGER + ledger


def make_seed(server, mib, chunk=25_000):
    """`bench_seed`: the 3.9.0 schema, its orders grown server side until the owned tables hold `mib`."""
    server.sql("DROP DATABASE IF EXISTS bench_seed; CREATE DATABASE bench_seed CHARACTER SET utf8mb4;")
    server.sql(schema_sql(), "bench_seed")
    done = 0
    while server.owned_bytes("bench_seed") < mib * 2**20:
        server.sql("""INSERT INTO wp_molam_orders (order_ref, amount_minor, status, created_at, updated_at)
            SELECT CONCAT('BENCH-', LPAD(seq, 10, '0'), '-', LPAD(HEX(CRC32(seq)), 8, '0')),
                   100 + (seq * 7919) %% 499900,
                   ELT(1 + seq %% 7, 'paid', 'paid', 'paid', 'failed', 'pending', 'cancelled', 'refunded'),
                   '2025-01-01 00:00:00' + INTERVAL seq MINUTE, '2025-01-01 00:00:30' + INTERVAL seq MINUTE
            FROM seq_%d_to_%d""" % (done + 1, done + chunk), "bench_seed")
        done += chunk
    return done


def fresh_database(server, name):
    """A copy of the seed, as the site's database of one run."""
    server.sql("DROP DATABASE IF EXISTS %s; CREATE DATABASE %s CHARACTER SET utf8mb4;" % (name, name))
    server.sql(schema_sql() + "INSERT INTO wp_molam_orders SELECT * FROM bench_seed.wp_molam_orders;\n", name)
    return server.owned_bytes(name)


# --- the live writer -------------------------------------------------------------------------------

class LiveWriter:
    """An order every ~3 ms through one long-running `mariadb` client (one connection, autocommit)."""

    def __init__(self, server, database, interval=0.003):
        self.process = subprocess.Popen(server.client(database, "--unbuffered", "--force"),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, bufsize=1)
        self.interval = interval
        self.writes, self.acknowledged, self.errors = [], [], []
        self.stderr = []
        self.process.stdin.write("SELECT CONNECTION_ID();\n")
        self.connection_id = int(self.process.stdout.readline())
        self.done = threading.Event()
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.drain.start()
        self.thread.start()

    def _drain(self):
        for line in self.process.stderr:
            if line.startswith("ERROR"):
                self.stderr.append(line.strip())

    def _run(self):
        index = 0
        while not self.done.is_set():
            ref = "LIVE-%d-%d" % (os.getpid(), index)
            index += 1
            wall, start = time.time(), time.perf_counter()
            try:
                self.process.stdin.write("INSERT INTO wp_molam_orders (order_ref, amount_minor, status) "
                                         "VALUES ('%s', %d, 'paid'); SELECT 'ack', ROW_COUNT();\n" % (ref, 1000 + index))
                answer = self.process.stdout.readline()
            except (OSError, ValueError) as error:
                self.errors.append("client: %s" % error)
                break
            if not answer:
                self.errors.append("client exited")
                break
            self.writes.append((wall, time.perf_counter() - start))
            if answer.rstrip("\n").split("\t")[-1] == "1":
                self.acknowledged.append(ref)
            else:
                self.errors.append(ref)
            time.sleep(self.interval)

    def stop(self):
        self.done.set()
        self.thread.join()
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait(timeout=60)
        self.drain.join()

    def figures(self, server, database, rollback_start, rollback_end):
        present = {row[0] for row in server.sql(
            "SELECT order_ref FROM wp_molam_orders WHERE order_ref LIKE 'LIVE-%'", database)}
        lost = [ref for ref in self.acknowledged if ref not in present]

        def longest(inside):
            values = [latency for wall, latency in self.writes
                      if rollback_start is not None
                      and (rollback_start <= wall + latency and wall <= rollback_end) == inside]
            return max(values) * 1000 if values else None
        return {"writes": len(self.writes), "acknowledged": len(self.acknowledged), "errors": len(self.errors),
                "first_errors": (self.stderr or self.errors)[:3], "rows_lost": len(lost), "lost_refs": lost[:10],
                "longest_write_ms_upgrade": longest(False), "longest_write_ms_rollback": longest(True)}


# --- the scenarios ---------------------------------------------------------------------------------

def step_details(journal_path):
    """The newest run's steps with their duration and detail (where a rollback's time went)."""
    con = sqlite3.connect("file:%s?mode=ro" % journal_path, uri=True)
    try:
        run_id = con.execute("SELECT id FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        return [{"name": name, "status": status, "duration_ms": duration, "detail": detail, "error": error}
                for name, status, duration, detail, error in con.execute(
                    "SELECT name, status, duration_ms, detail, error FROM steps WHERE run_id = ? ORDER BY id",
                    (run_id,))]
    finally:
        con.close()


def statement_log(server, on):
    """Every statement (the slow log with long_query_time = 0, as a table: microsecond start times)."""
    if on:
        server.sql("SET GLOBAL slow_query_log = 0; TRUNCATE mysql.slow_log; "
                   "SET GLOBAL log_output = 'TABLE', long_query_time = 0, slow_query_log = 1;")
    else:
        server.sql("SET GLOBAL slow_query_log = 0; SET GLOBAL long_query_time = 10;")


def logged_statements(server, start, end, skip_thread):
    """The statements the log holds between `start` and `end` (epoch seconds), but `skip_thread`'s."""
    rows = server.sql("""SELECT UNIX_TIMESTAMP(start_time), TIME_TO_SEC(query_time), thread_id,
               REPLACE(REPLACE(LEFT(CONVERT(sql_text USING utf8mb4), 160), '\n', ' '), '\t', ' ')
        FROM mysql.slow_log WHERE thread_id <> %d AND UNIX_TIMESTAMP(start_time) BETWEEN %f AND %f
        ORDER BY start_time""" % (skip_thread, start - 0.01, end + 0.005))
    return [{"start": float(r[0]), "seconds": float(r[1]), "thread": int(r[2]), "sql": r[3]} for r in rows]


class MySQLBench:
    def __init__(self, bench, server, releases, log_statements=False):
        self.bench, self.server, self.releases = bench, server, releases
        self.log_statements = log_statements
        self.counter = 0

    def new_site(self):
        self.counter += 1
        site = os.path.join(self.bench.runs_dir, "mysql-site-%d-%d" % (os.getpid(), self.counter))
        os.makedirs(os.path.join(site, "plugins"))
        subprocess.run(["cp", "-a", self.releases.old_tree, os.path.join(site, "plugins", PLUGIN)], check=True)
        database = "shop_%d" % self.counter
        owned = fresh_database(self.server, database)
        self.server.quiesce()
        return site, database, owned

    def done_with(self, site, database):
        self.server.sql("DROP DATABASE IF EXISTS %s" % database)
        self.bench.discard(site)

    def molam(self, site, database, *args, expect):
        return self.bench.molam(site, *args, expect=expect, db=self.server.dsn(database),
                                extra=("--allow-wide-grants",))

    def failing_upgrade_with_writer(self):
        site, database, owned = self.new_site()
        if self.log_statements:
            statement_log(self.server, True)
        writer = LiveWriter(self.server, database)
        try:
            time.sleep(0.3)   # the writer is writing before the agent starts
            result = self.molam(site, database, "upgrade", "--archive", self.releases.failing_zip,
                                "--sha256", self.releases.sha(self.releases.failing_zip), expect=1)
            time.sleep(0.2)
        finally:
            writer.stop()
            if self.log_statements:
                statement_log(self.server, False)
        if self.log_statements and result.get("rollback_started"):
            # The window (`rollbacks.duration_ms`) only: finished_at comes after the smoke checks.
            start = result["rollback_started"]
            end = start + result["rollback_ms"] / 1000 if result.get("rollback_ms") is not None \
                else result["rollback_finished"]
            result["rollback_statements"] = logged_statements(self.server, start, end, writer.connection_id)
        result["owned_bytes"] = owned
        result["steps"] = step_details(os.path.join(site, "state", "journal.db"))
        result["client"] = writer.figures(self.server, database, result.get("rollback_started"),
                                          result.get("rollback_finished"))
        self.done_with(site, database)
        return result

    def good_upgrade(self):
        site, database, owned = self.new_site()
        result = self.molam(site, database, "upgrade", "--archive", self.releases.good_zip,
                            "--sha256", self.releases.sha(self.releases.good_zip), expect=0)
        result["owned_bytes"] = owned
        result["steps"] = step_details(os.path.join(site, "state", "journal.db"))
        self.done_with(site, database)
        return result


def run(bench, work, files, mib, runs, root, log_statements=False):
    """The MySQL part: a server of its own under `root`, stopped (and moved to the trash) at the end."""
    started = time.perf_counter()
    releases = prepare_releases(work, files)
    server = MariaDB(root)
    try:
        server.start()
        seed_started = time.perf_counter()
        seed_rows = make_seed(server, mib)
        seed_seconds = time.perf_counter() - seed_started
        mysql = MySQLBench(bench, server, releases, log_statements)
        failing, good = [], []
        for _ in range(runs):
            failing.append(mysql.failing_upgrade_with_writer())
            good.append(mysql.good_upgrade())
        return {"mib": mib, "server": server.version, "statement_log": log_statements, "seed_rows": seed_rows, "seed_seconds": seed_seconds,
                "seed_bytes": server.owned_bytes("bench_seed"), "failing": failing, "good": good,
                "seconds": time.perf_counter() - started}
    finally:
        server.stop()
        if os.path.exists(root):
            os.rename(root, os.path.join(bench.trash, os.path.basename(root)))
