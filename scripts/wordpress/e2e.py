#!/usr/bin/env python3
"""molam-upgrade's live-payment test (issue 10): a real WordPress + MariaDB shop on loopback,
a client posting payments through the molam-form plugin's REST route, and the agent run as a
user runs it (upgrades, failing upgrades, lazy-loading swaps, manual rollbacks) under both
opcache settings of `php -S`. The plugin owns its orders table in the shop's MariaDB
(`shop7_molam_orders`), and its releases carry migrations: the agent, pointed at the site's
wp-config.php (the WordPress account, with --allow-wide-grants) or at a confined account the
harness creates (with the grants the agent documents), backs up, migrates and rolls back that very
table while payments keep writing to it. Prints, per scenario and opcache setting, failed payments
by kind, payments acknowledged by another version than the agent reported after it exited, the
agent's exit codes, rows the agent's rollbacks merged back or quarantined, and order rows in
MariaDB against acknowledged payments, which are checked after every run.

Exit status: 0 when the run completed, every acknowledged payment has its order row after every
run, and the agent refused to migrate under the WordPress account without --allow-wide-grants
(the asserted invariants: figures are printed, never asserted by timing); 1 otherwise; 2 on a
harness error (site, tooling, arguments).

    python3 scripts/wordpress/e2e.py [--short] [--agent PATH] [--agent-features current|new]
                                     [--swap exchange|symlink|both]
"""

import argparse
import collections
import json
import os
import shutil
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from payments import KINDS, KIND_HELP, PaymentClient  # noqa: E402
from releases import BROKEN_KINDS, FAILS_AT, MIGRATIONS, TABLE_COLUMNS, ReleaseFactory  # noqa: E402
from shop import AGENT_USER, ORDERS_TABLE, TABLE_PREFIX, MariaDB, SiteError, WordPressSite  # noqa: E402

TAIL_SECONDS = 3.0  # payments keep coming this long after the agent exits, before the next run
SHORT_TAIL_SECONDS = 2.0  # the same in --short runs (CI)
SCENARIOS = ("upgrade", "lazy", "rollback", "failing")
SCENARIO_HELP = {
    "idle": "no agent running (the first second of each opcache setting)",
    "setup": "the good upgrade before each scenario that puts its flavour (eager or lazy) in place",
    "upgrade": "good upgrades/downgrades, payment code required when the main file loads (eager)",
    "lazy": "good upgrades/downgrades, payment code required lazily inside the payment callback",
    "rollback": "a good upgrade, then a manual `rollback` (both runs counted)",
    "failing": "broken releases: " + ", ".join(BROKEN_KINDS) + " (each must be rolled back)",
}
ACCOUNTS = ("wordpress", "confined")
ACCOUNT_HELP = {
    "wordpress": "--wp-config <site>/wp-config.php --allow-wide-grants (the WordPress account, GRANT ALL ON shop.*)",
    "confined": "--db mysql://molam_agent@localhost/shop?socket=… --db-password-file … (the grants the agent documents)",
}
MERGED = re.compile(r"(\d+) rows written meanwhile kept")
QUARANTINED = re.compile(r"(\d+) rows of \S+ in _molam_quarantine_")
SHADOWED = re.compile(r"shadow copies of \d+ tables \((\d+) rows\)")


class HarnessError(Exception):
    pass


class Run:
    def __init__(self, phase, scenario, command, target, kind, expected):
        self.phase = phase
        self.scenario = scenario
        self.command = command
        self.target = target          # version of the release given, None for rollback
        self.kind = kind              # release kind ("good", a broken kind) or "rollback"
        self.expected = expected      # what the site should run once the agent is done
        self.started = self.exited = self.ended = None
        self.exit_code = None
        self.reported = None
        self.message = ""
        self.account = None
        self.merged = self.quarantined = self.shadowed = 0
        self.lost = 0                 # acknowledged payments without their order row after this run
        self.schema = ""              # migrations applied / orders table columns after this run
        self.schema_ok = True
        self.failed_step = None       # the first step the agent reports as failed


class Agent:
    def __init__(self, binary, config, timeout=600):
        self.binary = binary
        self.config = config
        self.timeout = timeout

    def run(self, arguments, database=()):
        command = [self.binary] + arguments[:1] + ["--config", self.config] + list(database) \
            + arguments[1:] + ["--json"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout)
        try:
            outcome = json.loads(result.stdout) if result.stdout.strip() else {}
        except ValueError:
            outcome = {}
        return result.returncode, outcome, result.stderr


def reported_version(exit_code, outcome, previous):
    """The version the agent says the site runs when it exits."""
    if exit_code == 0:
        return outcome.get("to_version") or outcome.get("from_version") or previous
    if exit_code == 3:
        return None  # rollback failed: the agent makes no claim
    return outcome.get("from_version") or previous


def rollback_rows(outcome):
    """(rows merged back, rows quarantined, rows copied into shadows) that a run's --json output
    reports: its message, else its steps' details (the rollback step repeats the notes)."""
    texts = [outcome.get("message") or ""]
    for step in outcome.get("steps") or []:
        texts += [str(step.get("detail") or ""), str(step.get("error") or "")]
    merged = max((int(n) for t in texts for n in MERGED.findall(t)), default=0)
    quarantined = max((sum(int(n) for n in QUARANTINED.findall(t)) for t in texts), default=0)
    shadowed = max((int(n) for t in texts for n in SHADOWED.findall(t)), default=0)
    return merged, quarantined, shadowed


def write_agent_config(path, state_dir, site, features, version_timeout, swap="exchange"):
    # The database as a real shop gives it: its wp-config.php (DB_NAME, DB_USER, DB_PASSWORD,
    # DB_HOST with the socket, $table_prefix). Each run also names it on the command line.
    entry = {"name": "molam-form", "plugin_dir": site.plugin_dir, "wp_config": site.wp_config}
    if features == "new":
        entry["swap"] = swap
    if features == "new":
        entry["version_url"] = f"{site.url}/?rest_route=/molam/v1/version"
        entry["version_expect"] = '"version":"{version}"'
        entry["version_timeout_s"] = version_timeout
        entry["after_swap"] = [shutil.which("curl") or "/usr/bin/curl", "-fsS", "-o", "/dev/null",
                               f"{site.url}/molam-e2e-opcache-reset.php"]
    config = {"state_dir": state_dir, "plugins": [entry]}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(config, f, indent=2)
    os.chmod(path, 0o600)


def plan(scenario, count, phase):
    """(command, version, kind, flavour, schema) steps of one scenario. Versions are distinct per
    phase, and none is a substring of another (4.0.1 of 4.0.10) that a `{version}` body check would
    mistake for it; every third good run is a downgrade below the version before it. The rollback
    scenario's upgrades add migration 0003 (so the `rollback` runs its down migration), and broken
    releases carry it too (so those swapped in leave a schema change to roll back)."""
    major = {"upgrade": 4, "lazy": 5, "rollback": 6, "failing": 7}[scenario]
    steps = []
    for i in range(count):
        if scenario in ("upgrade", "lazy"):
            version = f"{major}.{i - 2}.{5 + phase}" if i % 3 == 2 else f"{major}.{i}.{phase}"
            steps.append(("upgrade", version, "good", "eager" if scenario == "upgrade" else "lazy", 2))
        elif scenario == "rollback":
            steps.append(("upgrade", f"{major}.{i}.{phase}", "good", "lazy", 3))
            steps.append(("rollback", None, "rollback", None, None))
        else:
            steps.append(("upgrade", f"{major}.{i}.{phase}", BROKEN_KINDS[i % len(BROKEN_KINDS)], "lazy", 3))
    return steps


class Harness:
    def __init__(self, args):
        self.args = args
        self.root = None
        self.db = None
        self.site = None
        self.client = None
        self.clients = []
        self.runs = []
        self.phases = []
        self.schemas = {}             # version → schema level of its release
        self.grant_check = None       # (exit code, message) of the upgrade refused for wide grants

    def main(self):
        args = self.args
        if not (os.path.isfile(args.agent) and os.access(args.agent, os.X_OK)):
            raise HarnessError(f"no agent binary at {args.agent} (build it: swift build --product molam-upgrade)")
        for tool in ("php", "mariadbd", "mariadb-install-db", "mariadb", "curl"):
            if not shutil.which(tool):
                raise HarnessError(f"{tool} not found: run scripts/wordpress/install-deps.sh")
        if not os.path.isdir("/usr/share/wordpress"):
            raise HarnessError("/usr/share/wordpress missing: run scripts/wordpress/install-deps.sh")
        started = time.monotonic()
        self.root = tempfile.mkdtemp(prefix="molam-e2e-")
        print(f"work directory {self.root}")
        self.db = MariaDB(self.root)
        self.db.start()
        print(f"mariadbd up ({self.db.socket}) in {time.monotonic() - started:.1f} s")

        self.site = WordPressSite(self.root, self.db, REPO)
        self.site.choose_port()
        releases = ReleaseFactory(REPO, os.path.join(self.root, "releases"), TABLE_PREFIX)
        self.releases = releases
        os.makedirs(releases.out_dir)
        # The shop starts on a release WordPress activated (its table made by the activation hook),
        # with migration 0001 only, which the agent has never run: its ledger is empty.
        initial = releases.build("3.9.0", self.site.url, "good", "lazy", schema=1)
        self.schemas[initial.version] = None
        installed = self.site.create(initial.tree)
        print(f"WordPress installed at {self.site.wpdir} (port {self.site.port}): {json.dumps(installed)}")
        if installed.get("active_plugins") != ["molam-form/molam-form.php"] or not installed.get("orders_table"):
            raise HarnessError(f"molam-form is not active with its table: {installed}")
        # As on a real host: the web server's user owns the site (the agent gives each new plugin
        # tree that owner, and runs the release's checks and the private site check as it), and the
        # folders above it can be walked.
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "www-data:www-data", self.site.wpdir], check=True)

        state_dir = os.path.join(self.root, "state")
        os.makedirs(state_dir, mode=0o700)
        config = os.path.join(self.root, "agent.json")
        self.config_args = (config, state_dir, self.site, args.agent_features, args.version_timeout)
        write_agent_config(*self.config_args)
        # The confined account gets exactly what `molam-upgrade grants` prints for it.
        printed = subprocess.run(
            [args.agent, "grants", "--config", config, "--account", f"'{AGENT_USER}'@'localhost'"],
            capture_output=True, text=True, timeout=60)
        if printed.returncode != 0:
            raise HarnessError(f"molam-upgrade grants exited {printed.returncode}: {printed.stderr.strip()}")
        grants = [line for line in printed.stdout.splitlines() if line.startswith("GRANT ")]
        dsn, password_file = self.db.create_agent_account(self.root, grants)
        self.database_args = {
            "wordpress": ["--wp-config", self.site.wp_config, "--allow-wide-grants"],
            "confined": ["--db", dsn, "--db-password-file", password_file],
        }
        self.agent = Agent(args.agent, config)
        for account in ACCOUNTS:
            code, _, stderr = self.agent.run(["status"], self.database_args[account])
            if code != 0:
                raise HarnessError(f"the agent refuses agent.json (--agent-features {args.agent_features}) with the "
                                   f"{account} account, exit {code}: {stderr.strip()[:300]}")
        self.check_wide_grants_refused()

        settings = {"both": [0, None], "0": [0], "default": [None]}[args.opcache]
        swaps = ["exchange", "symlink"] if args.swap == "both" else [args.swap]
        if args.agent_features != "new":
            swaps = ["exchange"]
        counts = self.counts()
        phase = 0
        for swap in swaps:
            write_agent_config(*self.config_args, swap=swap)
            for revalidate in settings:
                self.run_phase(phase, revalidate, counts, swap)
                phase += 1
        self.report()
        print(f"\ntotal harness time {time.monotonic() - started:.0f} s")
        return self.verdict

    def check_wide_grants_refused(self):
        """The WordPress account (GRANT ALL ON shop.*) without --allow-wide-grants: a release with
        migrations must be refused (exit 4) before any change."""
        release = self.releases.build("3.8.9", self.site.url, "good", "lazy")
        before = self.db.schema_state()
        code, outcome, stderr = self.agent.run(
            ["upgrade", "--archive", release.archive, "--sha256", release.sha256, "--force"],
            ["--wp-config", self.site.wp_config])
        message = (outcome.get("error") or outcome.get("message") or stderr.strip() or "")[:300]
        unchanged = self.db.schema_state() == before and self.site_tree_version() == "3.9.0"
        self.grant_check = (code, unchanged, message)
        print(f"WordPress account without --allow-wide-grants: exit {code}, "
              f"{'nothing changed' if unchanged else 'SITE CHANGED'}: {message[:200]}")

    def site_tree_version(self):
        """The Version: header of the installed plugin's main file."""
        try:
            with open(os.path.join(self.site.plugin_dir, "molam-form.php")) as f:
                found = re.search(r"^\s*\*\s*Version:\s*(\S+)", f.read(), re.M)
            return found.group(1) if found else None
        except OSError:
            return None

    @staticmethod
    def failed_as_meant(run):
        """A broken release fails at the step its kind is built to fail at; any other run at none."""
        return run.failed_step == FAILS_AT.get(run.kind)

    def check_rows(self, run):
        """After a run: every payment acknowledged so far has its order row (same id), and the
        migration ledger and the orders table's columns are those of the version the site runs."""
        with self.client._lock:
            acked = [p for p in self.client.payments if p.acknowledged]
        rows = self.site.order_rows()
        run.lost = sum(1 for p in acked if rows.get(p.reference) != p.order_id)
        applied, columns, leftovers = self.db.schema_state()
        level = self.schemas.get(run.expected)
        extra = sorted(columns & {"channel", "risk_score", "risk_note"})
        run.schema = f"ledger {','.join(map(str, applied)) or '-'} cols +{'+'.join(extra) or '-'}"
        leftovers = [t for t in leftovers if t != "_molam_shadow_registry"]
        if leftovers:
            run.schema += " left " + ",".join(leftovers)
        if level is not None:
            run.schema_ok = (applied == [int(v) for v in MIGRATIONS[level]]
                             and set(extra) == TABLE_COLUMNS[level])

    def counts(self):
        if self.args.short:
            return {"upgrade": 2, "lazy": 3, "rollback": 1, "failing": len(BROKEN_KINDS)}
        return {"upgrade": 20, "lazy": 20, "rollback": 10, "failing": 20}

    def run_phase(self, phase, revalidate, counts, swap="exchange"):
        label = swap + "/" + ("revalidate-0" if revalidate == 0 else "revalidate-default")
        self.site.serve(revalidate)
        current = self.site.version()
        print(f"\n== opcache {label}: php -S on {self.site.url}, {self.site.opcache_settings()}, "
              f"plugin {current}")
        self.client = PaymentClient(self.site.port, label, rate=self.args.rate, threads=self.args.threads)
        self.clients.append((label, self.client))
        phase_start = time.monotonic()
        self.client.start()
        time.sleep(1.0)  # a second of payments with no agent: the baseline
        scenarios = [s for s in SCENARIOS if s in self.args.scenarios]
        for index, scenario in enumerate(scenarios):
            # Each scenario starts from a tree of its own flavour (eager or lazy), installed by a
            # run counted apart ("setup"), so that its first swap is not from another flavour.
            flavour = "eager" if scenario == "upgrade" else "lazy"
            account = "confined" if scenario in self.args.confined else "wordpress"
            setup = [("upgrade", f"3.{index}.{phase}", "good", flavour, 2)]
            steps = [("setup",) + step for step in setup] + [(scenario,) + step for step in
                                                             plan(scenario, counts[scenario], phase)]
            before_upgrade = current
            for scenario, command, version, kind, flavour, schema in steps:
                if command == "upgrade":
                    before_upgrade = current
                    expected = version if kind == "good" else current
                    run = Run(label, scenario, command, version, kind, expected)
                    release = self.releases.build(version, self.site.url, kind, flavour, schema)
                    self.schemas[version] = release.schema
                    arguments = ["upgrade", "--archive", release.archive, "--sha256", release.sha256, "--force"]
                else:
                    expected = before_upgrade  # the newest backup of another version
                    run = Run(label, scenario, command, None, kind, expected)
                    arguments = ["rollback"]
                run.account = account
                run.started = time.monotonic()
                run.exit_code, outcome, stderr = self.agent.run(arguments, self.database_args[account])
                run.exited = time.monotonic()
                run.reported = reported_version(run.exit_code, outcome, current)
                run.message = (outcome.get("error") or outcome.get("message") or stderr.strip() or "")[:300]
                run.merged, run.quarantined, run.shadowed = rollback_rows(outcome)
                run.failed_step = next((step.get("name") for step in outcome.get("steps") or []
                                        if step.get("status") == "failed"), None)
                time.sleep(SHORT_TAIL_SECONDS if self.args.short else TAIL_SECONDS)
                run.ended = time.monotonic()
                self.runs.append(run)
                site_version = self.site.version()
                self.check_rows(run)
                mark = "" if run.reported == run.expected == site_version and run.schema_ok and not run.lost \
                    and self.failed_as_meant(run) else "  <-- differs"
                rows = f"merged {run.merged} quarantined {run.quarantined}" if run.shadowed or run.merged \
                    or run.quarantined else ""
                print(f"  {scenario:8} {command:8} {version or '':9} {kind:14} {account[:4]} exit {run.exit_code}  "
                      f"{run.exited - run.started:5.2f} s  reported {run.reported}  expected {run.expected}  "
                      f"site {site_version}  {run.schema}  lost {run.lost} {rows}{mark}")
                if not self.failed_as_meant(run):
                    print(f"           failed at {run.failed_step or '-'} (meant to fail at {FAILS_AT.get(kind, '-')})")
                if run.exit_code != 0 and kind == "good" or not self.failed_as_meant(run):
                    print(f"           agent: {run.message}")
                current = site_version or run.reported or current
        self.client.stop()
        self.phases.append((label, phase_start, time.monotonic()))
        self.site.stop_server()

    def report(self):
        rows = self.site.order_rows()
        runs_by_key = collections.defaultdict(list)
        for run in self.runs:
            runs_by_key[(run.scenario, run.phase)].append(run)
        table = []
        missing_total = 0
        samples = {}
        for label, client in self.clients:
            phase_runs = [r for r in self.runs if r.phase == label]
            buckets = collections.defaultdict(list)
            stale = collections.defaultdict(list)
            failed_after = collections.Counter()
            for payment in client.payments:
                owner = next((r for r in phase_runs if r.started <= payment.sent < r.ended), None)
                key = (owner.scenario if owner else "idle", label)
                buckets[key].append(payment)
                if owner and not payment.acknowledged and payment.sent >= owner.exited:
                    failed_after[key] += 1
                if owner and payment.acknowledged and payment.sent >= owner.exited \
                        and owner.reported is not None and payment.version != owner.reported:
                    stale[key].append(payment.sent - owner.exited)
            for scenario in ("idle", "setup") + SCENARIOS:
                key = (scenario, label)
                payments = buckets.get(key, [])
                runs = runs_by_key.get(key, [])
                if not payments and not runs:
                    continue
                acked = [p for p in payments if p.acknowledged]
                missing = [p for p in acked if rows.get(p.reference) != p.order_id]
                missing_total += len(missing)
                kinds = collections.Counter(p.kind for p in payments if not p.acknowledged)
                for p in payments:
                    if not p.acknowledged and (scenario, p.kind) not in samples:
                        samples[(scenario, p.kind)] = p.detail
                broken_versions = {r.target for r in runs if r.kind in BROKEN_KINDS}
                exits = collections.Counter(r.exit_code for r in runs)
                table.append({
                    "scenario": scenario, "opcache": label, "runs": len(runs),
                    "payments": len(payments), "acked": len(acked),
                    "failed": sum(kinds.values()), "kinds": kinds,
                    "failed_after": failed_after[key],
                    "stale": len(stale[key]), "stale_max": max(stale[key], default=0.0),
                    "broken_acks": sum(1 for p in acked if p.version in broken_versions),
                    "exits": " ".join(f"{code}x{n}" for code, n in sorted(exits.items(), key=lambda i: str(i[0]))) or "-",
                    "rows": sum(1 for p in payments if p.reference in rows),
                    "missing": len(missing),
                    "accounts": "+".join(sorted({r.account for r in runs if r.account})) or "-",
                    "merged": sum(r.merged for r in runs),
                    "quarantined": sum(r.quarantined for r in runs),
                    "lost_after_run": max((r.lost for r in runs), default=0),
                    "seconds": sum(r.exited - r.started for r in runs),
                })
        self.print_table(table, SHORT_TAIL_SECONDS if self.args.short else TAIL_SECONDS)
        if samples:
            print("\nfirst failure of each kind:")
            for (scenario, kind), detail in sorted(samples.items()):
                print(f"  {scenario:8} {kind:8} {(detail or '')[:150]}")
        odd = [r for r in self.runs if r.reported != r.expected or not r.schema_ok or not self.failed_as_meant(r)]
        if odd:
            print("\nruns whose reported version, migration ledger, orders table or failing step is not the expected one:")
            for r in odd:
                print(f"  {r.phase} {r.scenario} {r.command} {r.target or ''} ({r.kind}, {r.account}): exit {r.exit_code}, "
                      f"failed at {r.failed_step or '-'}, reported {r.reported}, expected {r.expected}, {r.schema}: "
                      f"{r.message[:200]}")
        attempted = sum(len(c.payments) for _, c in self.clients)
        acked_total = sum(1 for _, c in self.clients for p in c.payments if p.acknowledged)
        lost_runs = [r for r in self.runs if r.lost]
        quarantine = self.site.order_rows("_molam_quarantine_" + ORDERS_TABLE)
        migrating = [r for r in self.runs if r.shadowed]
        print(f"\norders table {ORDERS_TABLE}: {len(rows)} rows; {acked_total} acknowledged payments "
              f"of {attempted} attempted; acknowledged without an order row: {missing_total} at the end, "
              f"and after {len(lost_runs)} of {len(self.runs)} runs")
        print(f"runs that shadowed the table before migrating: {len(migrating)} "
              f"({sum(r.shadowed for r in migrating)} rows copied); rows merged back by rollbacks: "
              f"{sum(r.merged for r in self.runs)}; quarantined: {sum(r.quarantined for r in self.runs)} "
              f"({len(quarantine)} rows in _molam_quarantine_{ORDERS_TABLE} now)")
        failures = []
        if missing_total or lost_runs:
            failures.append("acknowledged payments without an order row (hard invariant)")
        misfired = [r for r in self.runs if not self.failed_as_meant(r)]
        if misfired:
            failures.append(f"{len(misfired)} runs did not fail (or failed) at the step their release is built for")
        code, unchanged, message = self.grant_check
        if code != 4 or not unchanged:
            failures.append(f"the WordPress account without --allow-wide-grants was not refused before any change "
                            f"(exit {code}, {'unchanged' if unchanged else 'changed'}): {message[:160]}")
        self.verdict = 1 if failures else 0
        for failure in failures:
            print("FAILED: " + failure)
        if self.args.json_out:
            with open(self.args.json_out, "w") as f:
                json.dump({"table": [dict(row, kinds=dict(row["kinds"])) for row in table],
                           "runs": [vars(r) for r in self.runs]}, f, indent=1)

    @staticmethod
    def print_table(table, tail_seconds):
        columns = ["scenario", "opcache", "account", "runs", "agent s", "payments", "acked", "failed"] + list(KINDS) + [
            "failed after exit", "stale", "stale max s", "acked by broken", "exit codes", "rows merged",
            "quarantined", "rows", "acked w/o row"]
        lines = []
        for row in table:
            lines.append([row["scenario"], row["opcache"], row["accounts"], str(row["runs"]), f"{row['seconds']:.1f}",
                          str(row["payments"]), str(row["acked"]), str(row["failed"])]
                         + [str(row["kinds"].get(kind, 0)) for kind in KINDS]
                         + [str(row["failed_after"]), str(row["stale"]), f"{row['stale_max']:.2f}", str(row["broken_acks"]), row["exits"],
                            str(row["merged"]), str(row["quarantined"]), str(row["rows"]), str(row["missing"])])
        widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c) for i, c in enumerate(columns)]
        print()
        print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for line in lines:
            print("| " + " | ".join(v.ljust(w) for v, w in zip(line, widths)) + " |")
        print("\nfailed after exit: failed payments sent after the agent exited (within the "
              f"{tail_seconds:.0f} s that follow); stale: payments sent after the agent exited and acknowledged by another version than it reported"
              " (stale max s: the latest, in seconds after exit); acked by broken: payments acknowledged by a"
              " broken release's code; rows merged: rows live payments wrote during failed upgrades that the"
              " agent's rollbacks merged back into the restored table (quarantined: kept aside, the old schema"
              " could not take them); rows: order rows in MariaDB for this row's payments.")
        for account in ACCOUNTS:
            print(f"  {account:9} {ACCOUNT_HELP[account]}")
        for kind in KINDS:
            print(f"  {kind:8} {KIND_HELP[kind]}")
        for scenario, text in SCENARIO_HELP.items():
            print(f"  {scenario:8} {text}")

    def cleanup(self):
        if self.client:
            self.client.stop()
        if self.site:
            self.site.stop_server()
        if self.db:
            took = self.db.stop()
            print(f"mariadbd stopped in {took:.1f} s")
        if self.root:
            if self.args.keep:
                print(f"kept {self.root}")
            else:
                shutil.rmtree(self.root, ignore_errors=True)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default=os.path.join(REPO, ".build", "debug", "molam-upgrade"),
                        help="the molam-upgrade binary (default: %(default)s)")
    parser.add_argument("--short", action="store_true", help="a few runs of each scenario (CI)")
    parser.add_argument("--agent-features", choices=("current", "new"), default="new",
                        help="'new' (default) adds version_url, version_expect, version_timeout_s and after_swap "
                             "(an opcache reset) to agent.json's plugins[] entry; 'current' leaves them out, "
                             "for agents built before they existed")
    parser.add_argument("--swap", choices=("exchange", "symlink", "both"), default="both",
                        help="the agent's swap setting to run the scenarios under (with 'new' features)")
    parser.add_argument("--version-timeout", type=float, default=10.0, help="version_timeout_s with 'new'")
    parser.add_argument("--opcache", choices=("both", "0", "default"), default="both",
                        help="opcache.revalidate_freq settings to run: 0, Debian's default (2), or both")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of " + ",".join(SCENARIOS))
    parser.add_argument("--confined", default="failing",
                        help="comma-separated scenarios whose runs use the confined MariaDB account (the others "
                             "use wp-config.php's WordPress account with --allow-wide-grants); '' for none")
    parser.add_argument("--rate", type=float, default=80.0, help="target payments a second")
    parser.add_argument("--threads", type=int, default=4, help="payment client threads")
    parser.add_argument("--json-out", help="also write the table and runs as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (servers are stopped)")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.confined = [s.strip() for s in args.confined.split(",") if s.strip()]
    unknown = set(args.confined) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios in --confined: {', '.join(sorted(unknown))}")
    args.agent = os.path.abspath(args.agent)
    return args


def main():
    args = parse_arguments()

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, terminate)
    harness = Harness(args)
    try:
        return harness.main()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the site", file=sys.stderr)
        return 130
    except (HarnessError, SiteError, subprocess.SubprocessError, OSError) as error:
        print(f"harness error: {error}", file=sys.stderr)
        return 2
    finally:
        harness.cleanup()


if __name__ == "__main__":
    sys.exit(main())
