"""Watchers for scripts/bench-reference.py's instrumented runs, each in its own process (no GIL
shared with the harness or with each other):

- main file: stat()s the plugin's main file in a tight loop; counts misses and the longest stretch
  without it;
- schema: reads the main file's Version header between two looks at the orders table's columns,
  and counts samples where the old version's code sat on the new schema (the `currency` column of
  migration 0004) on both looks;
- site client: inserts an order every few ms (its own connection; SQLite's default busy handler,
  emulated so that the time spent waiting for another connection's lock is known), recording each
  insert's wall start, latency and lock wait; afterwards, which acknowledged orders are gone.
"""
import multiprocessing, os, re, sqlite3, time
from contextlib import contextmanager

VERSION = re.compile(rb"^[ \t/*#@]*Version:\s*(\S+)", re.M)


def stat_watcher(path, stop, out):
    checks = misses = 0
    longest = 0.0
    missing_since = None
    while True:
        for _ in range(256):
            checks += 1
            try:
                os.stat(path)
            except FileNotFoundError:
                misses += 1
                if missing_since is None:
                    missing_since = time.perf_counter()
                continue
            if missing_since is not None:
                longest = max(longest, time.perf_counter() - missing_since)
                missing_since = None
        if stop.is_set():
            break
    out.send({"checks": checks, "misses": misses, "longest_missing_ms": longest * 1000})


def schema_watcher(main, db, old, stop, out):
    con = sqlite3.connect(db, timeout=60, isolation_level=None)
    samples = old_on_new = errors = 0

    def has_column():
        return con.execute("SELECT count(*) FROM pragma_table_info('wp_molam_orders') "
                           "WHERE name = 'currency'").fetchone()[0] > 0
    while not stop.is_set():
        try:
            before = has_column()
            try:
                with open(main, "rb") as f:
                    match = VERSION.search(f.read(4096))
                version = match.group(1).decode() if match else None
            except OSError:
                version = None
            after = has_column()
        except sqlite3.Error:
            errors += 1
            time.sleep(0.002)
            continue
        samples += 1
        if version == old and before and after:
            old_on_new += 1
        time.sleep(0.001)
    out.send({"samples": samples, "old_code_on_new_schema": old_on_new, "errors": errors})


# SQLite's default busy handler (sqliteDefaultBusyCallback): these sleeps, then 100 ms each, up to the timeout.
BUSY_SLEEPS_MS = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]


def with_busy_retries(con, statement, timeout=60.0):
    """Runs `statement` as SQLite's default busy handler would (busy timeout 0 on the connection, the
    same sleeps done here), and returns the seconds spent waiting for another connection's lock."""
    waited, attempt = 0.0, 0
    while True:
        try:
            con.execute(statement)
            return waited
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or waited >= timeout:
                raise
        delay = BUSY_SLEEPS_MS[min(attempt, len(BUSY_SLEEPS_MS) - 1)] / 1000
        attempt += 1
        start = time.perf_counter()
        time.sleep(delay)
        waited += time.perf_counter() - start


def site_client(db, stop, out, interval=0.003):
    """Inserts an order every `interval` s, as a site would (BEGIN IMMEDIATE, INSERT, COMMIT), and
    records each write's wall start, latency and the part of it spent waiting for another
    connection's lock (taking the write lock, or committing while a reader holds the file)."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    writes, errors, acknowledged = [], [], []
    index = 0
    while not stop.is_set():
        ref = "LIVE-%d-%d" % (os.getpid(), index)
        index += 1
        wall, start = time.time(), time.perf_counter()
        waited = 0.0
        try:
            waited += with_busy_retries(con, "BEGIN IMMEDIATE")
            try:
                con.execute("INSERT INTO wp_molam_orders (order_ref, amount_minor, status) VALUES (?, ?, 'paid')",
                            (ref, 1000 + index))
                waited += with_busy_retries(con, "COMMIT")
            except sqlite3.Error:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            errors.append(str(error))
        else:
            acknowledged.append(ref)
        writes.append((wall, time.perf_counter() - start, waited))
        time.sleep(interval)
    con.close()
    out.send({"writes": writes, "errors": errors, "acknowledged": acknowledged})


class Watch:
    def __init__(self, results):
        self.results = results

    def figures(self, marks, db):
        """Summaries; `marks` has the rollback's start and end (epoch seconds) to split the writes."""
        client = self.results["client"]
        rollback_start, rollback_end = marks.get("rollback"), marks.get("end")

        def longest(inside, part=1):
            values = [write[part] for write in client["writes"]
                      if rollback_start is not None
                      and (rollback_start <= write[0] + write[1] and write[0] <= rollback_end) == inside]
            return max(values) * 1000 if values else None
        con = sqlite3.connect(db, timeout=60)
        try:
            present = {row[0] for row in
                       con.execute("SELECT order_ref FROM wp_molam_orders WHERE order_ref LIKE 'LIVE-%'")}
            lost = len([ref for ref in client["acknowledged"] if ref not in present])
        except sqlite3.DatabaseError as error:
            # The shell's cp over a database in use can leave it unreadable: every row is lost.
            lost = "all (%s)" % error
        finally:
            con.close()
        return {"main_file": self.results["stat"], "schema": self.results["schema"],
                "client": {"writes": len(client["writes"]), "acknowledged": len(client["acknowledged"]),
                           "errors": len(client["errors"]), "first_errors": client["errors"][:3],
                           "longest_write_ms_upgrade": longest(False), "longest_write_ms_rollback": longest(True),
                           "longest_wait_ms_upgrade": longest(False, 2), "longest_wait_ms_rollback": longest(True, 2),
                           "rows_lost": lost}}


@contextmanager
def running(main, db, old):
    stop = multiprocessing.Event()
    processes, pipes = {}, {}
    for name, target, args in (("stat", stat_watcher, (main,)), ("schema", schema_watcher, (main, db, old)),
                               ("client", site_client, (db,))):
        receive, send = multiprocessing.Pipe(duplex=False)
        process = multiprocessing.Process(target=target, args=(*args, stop, send), daemon=True)
        process.start()
        processes[name], pipes[name] = process, receive
    time.sleep(0.3)   # every watcher has taken a first look
    results = {}
    watch = Watch(results)
    try:
        yield watch
    finally:
        time.sleep(0.2)
        stop.set()
        for name, process in processes.items():
            results[name] = pipes[name].recv()
            process.join()
