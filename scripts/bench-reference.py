#!/usr/bin/env python3
"""Benchmark: DESIGN.md's reference workload, molam-upgrade side by side with a naive shell pipeline.

Generates (once, cached under the work directory; nothing big lives in git) a WooCommerce-sized
plugin: molam-form's fixture files plus about 5,000 generated PHP/JS/CSS files and incompressible
assets (about 65 MB unpacked, a zip of about 34 MB), as version 3.9.0 (installed) and releases
4.0.0 (good) and 4.0.0 "failing" (a command smoke check exits 1, so the agent rolls back), plus
SQLite site databases whose owned tables hold 10 / 100 / 400 MiB of orders. Then, in one run and
on the same files, times the release binary (figures read from its journal, peak RSS from wait4)
and the shell pipeline (tar -czf + cp of the db + sha256sum + unzip + two mv; rollback: tar -xzf +
cp + two mv), and prints medians of RUNS runs as a Markdown table.

Instrumented runs (one each, not timed) add a process stat()ing the plugin's main file in a tight
loop, one looking for old code on the new schema, and a site client inserting an order every few
ms into the owned table.

The MySQL rows (bench_mysql.py): the same plugin with 100 MiB of owned tables in a private
MariaDB server started in the work directory (stopped at the end): a failing upgrade's rollback
with a live writer (journal durations, acknowledged orders lost) and a successful upgrade (wall,
peak RSS). --mysql-only / --skip-mysql limit a run to one part.

Old outputs are moved aside into a trash folder, removed at the end (or by the next run): on this
filesystem creating files right after a mass delete is several times slower.

Usage: scripts/bench-reference.py [--binary PATH] [--runs N] [--quick] [--json-out FILE] [--work DIR]
                                  [--mysql-only | --skip-mysql]
"""
import argparse, json, multiprocessing, os, shutil, sqlite3, statistics, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_workload as workload   # noqa: E402
import bench_watchers as watchers   # noqa: E402
import bench_mysql                  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "molam-form"
OLD, NEW = "3.9.0", "4.0.0"


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.binary = args.binary
        self.work = work
        self.runs_dir = os.path.join(args.work, "runs")
        self.trash = os.path.join(args.work, "trash")
        self.counter = 0
        os.makedirs(self.runs_dir, exist_ok=True)
        os.makedirs(self.trash, exist_ok=True)

    # --- sites -------------------------------------------------------------------------------------

    def new_site(self, tree, db):
        """A fresh site: a copy of `tree` as the installed plugin, a copy of `db` as its database."""
        self.counter += 1
        site = os.path.join(self.runs_dir, "site-%d-%d" % (os.getpid(), self.counter))
        os.makedirs(os.path.join(site, "plugins"))
        os.makedirs(os.path.join(site, "shell"))
        subprocess.run(["cp", "-a", tree, os.path.join(site, "plugins", PLUGIN)], check=True)
        subprocess.run(["cp", "--reflink=auto", db, os.path.join(site, "site.db")], check=True)
        subprocess.run(["sync"], check=True)   # the copies' writeback must not land inside a timing
        return site

    def discard(self, site):
        """Moved aside, not deleted: the next run's file creations stay fast."""
        os.rename(site, os.path.join(self.trash, os.path.basename(site)))
        if shutil.disk_usage(self.trash).free < 15 * 2**30:
            purge(self.trash)

    # --- molam-upgrade -----------------------------------------------------------------------------

    def molam(self, site, *args, expect, db=None, extra=()):
        plugin = os.path.join(site, "plugins", PLUGIN)
        command = [self.binary, *args, "--quiet", "--plugin-dir", plugin, "--db", db or "sqlite://" + site + "/site.db",
                   *extra, "--state-dir", os.path.join(site, "state")]
        with open(os.path.join(site, "agent.log"), "ab") as log:
            start = time.perf_counter()
            process = subprocess.Popen(command, stdout=log, stderr=log)
            own = OwnPeak(process.pid)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - start
            own.stop()
        process.returncode = code = os.waitstatus_to_exitcode(status)
        if code != expect:
            tail = open(os.path.join(site, "agent.log"), errors="replace").read()[-2000:]
            raise SystemExit("molam-upgrade %s: exit %d, expected %d\n%s" % (args[0], code, expect, tail))
        # ru_maxrss of wait4 covers the agent's reaped children too (php's syntax check, smoke
        # commands); VmHWM, polled, is the agent's own.
        result = {"wall_s": wall, "rss_kib": usage.ru_maxrss, "own_rss_kib": own.peak_kib, "exit": code}
        result.update(journal(os.path.join(site, "state", "journal.db")))
        return result

    # --- the shell pipeline ------------------------------------------------------------------------

    def shell_upgrade(self, site, release):
        d = os.path.join(site, "shell")
        plugins = os.path.join(site, "plugins")
        times = {}
        times["tar_czf"] = timed(["tar", "-czf", d + "/files.tgz", "-C", plugins, PLUGIN])
        times["cp_db"] = timed(["cp", site + "/site.db", d + "/site.db"])
        times["sha256sum"] = timed(["sha256sum", release])
        times["unzip"] = timed(["unzip", "-q", release, "-d", d + "/staging"])
        times["mv_mv"] = timed(["mv", plugins + "/" + PLUGIN, d + "/old"])
        times["mv_mv"] += timed(["mv", d + "/staging/" + PLUGIN, plugins + "/" + PLUGIN])
        times["total"] = sum(times.values())
        return times

    def shell_rollback(self, site):
        d = os.path.join(site, "shell")
        plugins = os.path.join(site, "plugins")
        os.makedirs(d + "/restore")
        times = {}
        times["tar_xzf"] = timed(["tar", "-xzf", d + "/files.tgz", "-C", d + "/restore"])
        times["cp_db"] = timed(["cp", d + "/site.db", site + "/site.db"])
        times["mv_mv"] = timed(["mv", plugins + "/" + PLUGIN, d + "/failed"])
        times["mv_mv"] += timed(["mv", d + "/restore/" + PLUGIN, plugins + "/" + PLUGIN])
        times["total"] = sum(times.values())
        return times

    # --- scenarios ---------------------------------------------------------------------------------

    def failing_upgrade(self, size):
        site = self.new_site(self.work.old_tree, self.work.databases[size])
        result = self.molam(site, "upgrade", "--archive", self.work.failing_zip,
                            "--sha256", self.work.failing_sha, expect=1)
        self.discard(site)
        return result

    def shell_failing_upgrade(self, size):
        site = self.new_site(self.work.old_tree, self.work.databases[size])
        upgrade = self.shell_upgrade(site, self.work.good_zip)
        rollback = self.shell_rollback(site)
        self.discard(site)
        return {"upgrade": upgrade, "rollback": rollback}

    def good_upgrade_and_rollback(self, size):
        site = self.new_site(self.work.old_tree, self.work.databases[size])
        upgrade = self.molam(site, "upgrade", "--archive", self.work.good_zip, "--sha256", self.work.good_sha,
                             expect=0)
        rollback = self.molam(site, "rollback", "--reason", "bench", expect=0)
        self.discard(site)
        return {"upgrade": upgrade, "rollback": rollback}

    def small_plugin(self):
        site = self.new_site(self.work.small_tree, self.work.small_db)
        result = self.molam(site, "upgrade", "--archive", self.work.small_zip, "--sha256", self.work.small_sha,
                            expect=0)
        self.discard(site)
        return result

    def instrumented(self, size, shell):
        """One run with the watchers: a failing upgrade (automatic rollback) or the shell's."""
        site = self.new_site(self.work.old_tree, self.work.databases[size])
        main = os.path.join(site, "plugins", PLUGIN, PLUGIN + ".php")
        with watchers.running(main, site + "/site.db", OLD) as watch:
            if shell:
                marks = {"start": time.time()}
                self.shell_upgrade(site, self.work.good_zip)
                marks["rollback"] = time.time()
                self.shell_rollback(site)
                marks["end"] = time.time()
            else:
                result = self.molam(site, "upgrade", "--archive", self.work.failing_zip,
                                    "--sha256", self.work.failing_sha, expect=1)
                marks = {"rollback": result["rollback_started"], "end": result["rollback_finished"]}
        figures = watch.figures(marks, site + "/site.db")
        self.discard(site)
        return figures


class OwnPeak:
    """Polls /proc/PID/status VmHWM (the process's own peak RSS, children excluded) until stopped."""

    def __init__(self, pid):
        self.pid, self.peak_kib, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self):
        while not self.done.is_set():
            try:
                with open("/proc/%d/status" % self.pid) as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.005)

    def stop(self):
        self.done.set()
        self.thread.join()


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def iso_seconds(text):
    if not text:
        return None
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def journal(path):
    """The newest run's steps and rollback, as the journal recorded them."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        run_id, command = con.execute("SELECT id, command FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
        steps = {}
        for name, duration in con.execute("SELECT name, duration_ms FROM steps WHERE run_id = ? ORDER BY id",
                                          (run_id,)):
            if duration is not None:
                steps[name] = steps.get(name, 0) + duration
        row = con.execute("SELECT duration_ms, status, started_at, finished_at FROM rollbacks WHERE run_id = ? "
                          "ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
    finally:
        con.close()
    result = {"command": command, "steps_ms": steps}
    if row:
        result.update(rollback_ms=row[0], rollback_status=row[1], rollback_started=iso_seconds(row[2]),
                      rollback_finished=iso_seconds(row[3]))
    return result


def purge(folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/molam-upgrade"))
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (medians); default 3")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 run: checks the harness only")
    parser.add_argument("--json-out", help="also write every figure to this JSON file")
    parser.add_argument("--work", default=os.path.join(ROOT, ".build/bench-reference"))
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--mysql-only", action="store_true", help="only the MySQL rows (100 MiB in MariaDB)")
    part.add_argument("--skip-mysql", action="store_true", help="only the SQLite rows")
    parser.add_argument("--mysql-statement-log", action="store_true",
                        help="log MariaDB's statements during the failing runs; print the rollback window's")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
        sizes, files, mysql_mib = [1, 2, 4], 200, 2
    else:
        sizes, files, mysql_mib = [10, 100, 400], 5000, 100
    os.makedirs(args.work, exist_ok=True)
    # A previous run's leftovers (interrupted, or its trash) go first, before anything is timed.
    for leftover in ("trash", "runs"):
        purge(os.path.join(args.work, leftover))
    started = time.perf_counter()
    work = workload.prepare(os.path.join(args.work, "workload"), ROOT, files, [] if args.mysql_only else sizes,
                            quick=args.quick)
    bench = Bench(args, work)
    raw = {"sizes_mib": sizes, "runs": args.runs, "workload": work.describe(), "binary": args.binary}
    if not args.mysql_only:
        sqlite_part(bench, work, sizes, raw)
    if not args.skip_mysql:
        raw["mysql"] = bench_mysql.run(bench, work, files, mysql_mib, args.runs,
                                       os.path.join(bench.runs_dir, "mariadb-%d" % os.getpid()),
                                       log_statements=args.mysql_statement_log)
    raw["bench_seconds"] = time.perf_counter() - started
    table = figures_table(raw, None if args.mysql_only else sizes)
    print(table)
    if args.mysql_statement_log and "mysql" in raw:
        import bench_table
        print("\n" + bench_table.rollback_statements(raw["mysql"]))
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump(raw, out, indent=1, default=str)
    purge(bench.trash)


def sqlite_part(bench, work, sizes, raw):
    mid, large = sizes[1], sizes[-1]
    failing = {size: [] for size in sizes}
    shell = {size: [] for size in sizes}
    good, small = [], []
    for _ in range(bench.args.runs):
        for size in sizes:
            failing[size].append(bench.failing_upgrade(size))
            shell[size].append(bench.shell_failing_upgrade(size))
        good.append(bench.good_upgrade_and_rollback(mid))
        small.append(bench.small_plugin())
    raw.update(failing={str(k): v for k, v in failing.items()}, shell={str(k): v for k, v in shell.items()},
               good=good, small=small)
    raw["watch_molam"] = bench.instrumented(large, shell=False)
    raw["watch_shell"] = bench.instrumented(large, shell=True)


def figures_table(raw, sizes):
    import bench_table
    return bench_table.render(raw, sizes)


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    main()
