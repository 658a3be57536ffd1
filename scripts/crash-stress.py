#!/usr/bin/env python3
"""Kills the built binary at random moments of upgrades and rollbacks, many times, and checks after
each kill (and the `recover` that follows, itself sometimes killed) that the fixture site is exactly
one known version: tree byte for byte, tables row for row, journal in agreement, nothing left over.

Not a test (it sleeps random times on purpose); `make stress` runs it and prints figures.

usage: crash-stress.py BINARY [ITERATIONS] [SEED]
"""
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Fixtures", "plugins", "molam-form")


def tree_snapshot(path):
    """Every path under `path` with its kind, permission bits and content hash (lstat, no following)."""
    entries = {}
    for directory, dirs, files in os.walk(path):
        dirs.sort()
        for name in [""] + sorted(files) + dirs:
            full = os.path.join(directory, name) if name else directory
            if name in dirs:
                continue  # visited as its own `directory`
            info = os.lstat(full)
            rel = os.path.relpath(full, path)
            mode = oct(info.st_mode & 0o7777)
            if os.path.islink(full):
                entries[rel] = "link " + os.readlink(full)
            elif os.path.isdir(full):
                entries[rel] = "dir " + mode
            else:
                with open(full, "rb") as handle:
                    entries[rel] = "file %s %s" % (mode, hashlib.sha256(handle.read()).hexdigest())
    return entries


def table_dump(path):
    """Schema and rows of every table; the migration ledger's applied_at masked."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    lines = [repr(row) for row in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid")]
    for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name").fetchall():
        for row in db.execute('SELECT * FROM "%s" ORDER BY 1' % name.replace('"', '""')):
            row = list(row)
            if name == "molam_schema_migrations":
                row = row[:-1]
            lines.append("%s: %r" % (name, row))
    db.close()
    return "\n".join(lines)


class Site:
    def __init__(self, base, binary):
        self.root = tempfile.mkdtemp(prefix="stress-", dir=base)
        self.binary = binary
        self.plugins = os.path.join(self.root, "wp-content", "plugins")
        self.plugin = os.path.join(self.plugins, "molam-form")
        self.db = os.path.join(self.root, "site.db")
        self.state = os.path.join(self.root, "state")
        os.makedirs(self.plugins)
        subprocess.run(["cp", "-a", os.path.join(FIXTURES, "3.9.0", "molam-form"), self.plugin], check=True)
        with open(os.path.join(ROOT, "Fixtures", "site", "site.sql")) as handle:
            subprocess.run(["sqlite3", self.db], stdin=handle, check=True)

    def argv(self, *arguments):
        return [self.binary, *arguments, "--plugin-dir", self.plugin, "--db", "sqlite://" + self.db,
                "--state-dir", self.state]

    def run(self, *arguments):
        return subprocess.run(self.argv(*arguments), capture_output=True, text=True)

    def start(self, *arguments):
        return subprocess.Popen(self.argv(*arguments), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


def release(base, version, fmt):
    path = os.path.join(base, "molam-form-%s.%s" % (version, fmt))
    source = os.path.join(FIXTURES, version)
    if fmt == "zip":
        subprocess.run(["zip", "-qr", path, "molam-form"], cwd=source, check=True)
    else:
        subprocess.run(["tar", "-C", source, "-czf", path, "molam-form"], check=True)
    with open(path, "rb") as handle:
        return path, hashlib.sha256(handle.read()).hexdigest()


def killed_at_random(site, arguments, longest):
    """Starts the command, kills its whole process group after a random delay; returns the delay."""
    process = site.start(*arguments)
    delay = random.uniform(0, longest)
    time.sleep(delay)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    return delay


def check(site, references, label):
    """Returns the version the site is exactly on, or raises with what is wrong."""
    tree = tree_snapshot(site.plugin)
    dump = table_dump(site.db)
    version = next((v for v, (t, d) in references.items() if t == tree), None)
    if version is None:
        raise AssertionError("%s: the live tree is no known version" % label)
    if references[version][1] != dump:
        raise AssertionError("%s: tree of %s but not its tables" % (label, version))
    status = json.loads(site.run("status", "--json").stdout)
    if status.get("unfinished_runs"):
        raise AssertionError("%s: unfinished runs after recover" % label)
    runs = json.loads(site.run("history", "--json", "--limit", "1").stdout).get("runs", [])
    if runs:
        last = runs[0]
        landed = last.get("to_version") if last["status"] == "succeeded" else last.get("from_version")
        # An aborted run may have died before it even read the installed version.
        if last["status"] in ("succeeded", "rolled_back", "aborted") and landed not in (version, None):
            raise AssertionError("%s: journal says %s (%s) but the site runs %s" % (
                label, last["status"], landed, version))
    work = os.path.join(site.state, "work")
    leftovers = os.listdir(work) if os.path.isdir(work) else []
    if len(leftovers) > 1:
        raise AssertionError("%s: work area holds %s" % (label, leftovers))
    backups = os.path.join(site.state, "backups", "molam-form")
    partial = [n for n in os.listdir(backups) if n.startswith(".partial-")] if os.path.isdir(backups) else []
    if partial or os.listdir(site.plugins) != ["molam-form"]:
        raise AssertionError("%s: leftovers %s %s" % (label, partial, os.listdir(site.plugins)))
    return version


def main():
    binary = os.path.abspath(sys.argv[1])
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else int(time.time())
    random.seed(seed)
    base = tempfile.mkdtemp(prefix="molam-stress-")
    good = release(base, "4.0.0", "tar.gz")
    failing = release(base, "4.0.2", "zip")

    # References: each version's tree and tables, and how long each scenario takes unkilled.
    references = {}
    timings = {}
    site = Site(base, binary)
    references["3.9.0"] = (tree_snapshot(site.plugin), table_dump(site.db))
    started = time.monotonic()
    assert site.run("upgrade", "--archive", good[0], "--sha256", good[1]).returncode == 0
    timings["upgrade"] = time.monotonic() - started
    references["4.0.0"] = (tree_snapshot(site.plugin), table_dump(site.db))
    started = time.monotonic()
    assert site.run("rollback").returncode == 0
    timings["rollback"] = time.monotonic() - started
    site.remove()
    site = Site(base, binary)
    started = time.monotonic()
    assert site.run("upgrade", "--archive", failing[0], "--sha256", failing[1]).returncode == 1
    timings["failing"] = time.monotonic() - started
    site.remove()

    outcomes = {}
    failures = []
    recover_kills = 0
    for index in range(iterations):
        scenario = random.choice(["upgrade", "failing", "rollback"])
        site = Site(base, binary)
        try:
            if scenario == "rollback":
                assert site.run("upgrade", "--archive", good[0], "--sha256", good[1]).returncode == 0
                arguments = ["rollback"]
            else:
                chosen = good if scenario == "upgrade" else failing
                arguments = ["upgrade", "--archive", chosen[0], "--sha256", chosen[1]]
            killed_at_random(site, arguments, timings[scenario] * 1.2)
            if random.random() < 0.3:
                recover_kills += 1
                killed_at_random(site, ["recover"], timings["failing"])
            result = site.run("recover")
            if result.returncode != 0:
                raise AssertionError("recover exited %d: %s" % (result.returncode, result.stderr.strip()))
            version = check(site, references, "%s #%d" % (scenario, index))
            outcomes[(scenario, version)] = outcomes.get((scenario, version), 0) + 1
        except AssertionError as error:
            failures.append(str(error))
            print("FAIL", error, "(site kept at %s)" % site.root, file=sys.stderr)
            continue
        site.remove()

    print("crash stress (seed %d): %d random SIGKILLs of upgrades and rollbacks, %d of recover too; "
          "unkilled durations: upgrade %.0f ms, failing upgrade %.0f ms, rollback %.0f ms"
          % (seed, iterations, recover_kills, timings["upgrade"] * 1000, timings["failing"] * 1000,
             timings["rollback"] * 1000))
    for (scenario, version), count in sorted(outcomes.items()):
        print("  %-9s -> exactly %s: %d" % (scenario, version, count))
    print("  failures: %d" % len(failures))
    if not failures:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
