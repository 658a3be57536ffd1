#!/usr/bin/env python3
"""molam-upgrade's live-payment test (issue 10): a real WordPress + MariaDB shop on loopback,
a client posting payments through the molam-form plugin's REST route, and the agent run as a
user runs it (upgrades, failing upgrades, lazy-loading swaps, manual rollbacks) under both
opcache settings of `php -S`. Prints, per scenario and opcache setting, failed payments by kind,
payments acknowledged by another version than the agent reported after it exited, the agent's
exit codes, and order rows in MariaDB against acknowledged payments.

Exit status: 0 when the run completed and every acknowledged payment has its order row (the
only asserted invariant: figures are printed, never asserted by timing); 1 when an
acknowledged payment has no order row; 2 on a harness error (site, tooling, arguments).

    python3 scripts/wordpress/e2e.py [--short] [--agent PATH] [--agent-features current|new]
                                     [--swap exchange|symlink|both]
"""

import argparse
import collections
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from payments import KINDS, KIND_HELP, PaymentClient  # noqa: E402
from releases import BROKEN_KINDS, ReleaseFactory  # noqa: E402
from shop import TABLE_PREFIX, MariaDB, SiteError, WordPressSite  # noqa: E402

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


class Agent:
    def __init__(self, binary, config, timeout=600):
        self.binary = binary
        self.config = config
        self.timeout = timeout

    def run(self, arguments):
        command = [self.binary] + arguments[:1] + ["--config", self.config] + arguments[1:] + ["--json"]
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


def write_agent_config(path, state_dir, site, side_db, features, version_timeout, swap="exchange"):
    entry = {"name": "molam-form", "plugin_dir": site.plugin_dir, "db": f"sqlite://{side_db}",
             "table_prefix": TABLE_PREFIX}
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
    """(command, version, kind, flavour) steps of one scenario. Versions are distinct per phase, and
    none is a substring of another (4.0.1 of 4.0.10) that a `{version}` body check would mistake
    for it; every third good run is a downgrade below the version before it."""
    major = {"upgrade": 4, "lazy": 5, "rollback": 6, "failing": 7}[scenario]
    steps = []
    for i in range(count):
        if scenario in ("upgrade", "lazy"):
            version = f"{major}.{i - 2}.{5 + phase}" if i % 3 == 2 else f"{major}.{i}.{phase}"
            steps.append(("upgrade", version, "good", "eager" if scenario == "upgrade" else "lazy"))
        elif scenario == "rollback":
            steps.append(("upgrade", f"{major}.{i}.{phase}", "good", "lazy"))
            steps.append(("rollback", None, "rollback", None))
        else:
            steps.append(("upgrade", f"{major}.{i}.{phase}", BROKEN_KINDS[i % len(BROKEN_KINDS)], "lazy"))
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
        releases = ReleaseFactory(REPO, os.path.join(self.root, "releases"))
        self.releases = releases
        os.makedirs(releases.out_dir)
        initial = releases.build("3.9.0", self.site.url, "good", "lazy")
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
        side_db = os.path.join(self.root, "side.db")
        sqlite3.connect(side_db).close()
        config = os.path.join(self.root, "agent.json")
        self.config_args = (config, state_dir, self.site, side_db, args.agent_features, args.version_timeout)
        write_agent_config(*self.config_args)
        self.agent = Agent(args.agent, config)
        code, _, stderr = self.agent.run(["status"])
        if code != 0:
            raise HarnessError(f"the agent refuses agent.json (--agent-features {args.agent_features}), "
                               f"exit {code}: {stderr.strip()[:300]}")

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
            setup = [("upgrade", f"3.{index}.{phase}", "good", flavour)]
            steps = [("setup",) + step for step in setup] + [(scenario,) + step for step in
                                                             plan(scenario, counts[scenario], phase)]
            before_upgrade = current
            for scenario, command, version, kind, flavour in steps:
                if command == "upgrade":
                    before_upgrade = current
                    expected = version if kind == "good" else current
                    run = Run(label, scenario, command, version, kind, expected)
                    release = self.releases.build(version, self.site.url, kind, flavour)
                    arguments = ["upgrade", "--archive", release.archive, "--sha256", release.sha256, "--force"]
                else:
                    expected = before_upgrade  # the newest backup of another version
                    run = Run(label, scenario, command, None, kind, expected)
                    arguments = ["rollback"]
                run.started = time.monotonic()
                run.exit_code, outcome, stderr = self.agent.run(arguments)
                run.exited = time.monotonic()
                run.reported = reported_version(run.exit_code, outcome, current)
                run.message = (outcome.get("error") or outcome.get("message") or stderr.strip() or "")[:300]
                time.sleep(SHORT_TAIL_SECONDS if self.args.short else TAIL_SECONDS)
                run.ended = time.monotonic()
                self.runs.append(run)
                site_version = self.site.version()
                mark = "" if run.reported == run.expected == site_version else "  <-- differs"
                print(f"  {scenario:8} {command:8} {version or '':9} {kind:13} exit {run.exit_code}  "
                      f"{run.exited - run.started:5.2f} s  reported {run.reported}  expected {run.expected}  "
                      f"site {site_version}{mark}")
                if run.exit_code != 0 and kind == "good":
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
                    "seconds": sum(r.exited - r.started for r in runs),
                })
        self.print_table(table, SHORT_TAIL_SECONDS if self.args.short else TAIL_SECONDS)
        if samples:
            print("\nfirst failure of each kind:")
            for (scenario, kind), detail in sorted(samples.items()):
                print(f"  {scenario:8} {kind:8} {(detail or '')[:150]}")
        odd = [r for r in self.runs if r.reported != r.expected]
        if odd:
            print("\nruns whose reported version is not the expected one:")
            for r in odd:
                print(f"  {r.phase} {r.scenario} {r.command} {r.target or ''} ({r.kind}): exit {r.exit_code}, "
                      f"reported {r.reported}, expected {r.expected}: {r.message[:160]}")
        attempted = sum(len(c.payments) for _, c in self.clients)
        acked_total = sum(1 for _, c in self.clients for p in c.payments if p.acknowledged)
        print(f"\norders table {TABLE_PREFIX}molam_orders: {len(rows)} rows; {acked_total} acknowledged payments "
              f"of {attempted} attempted; acknowledged without an order row: {missing_total}")
        self.verdict = 1 if missing_total else 0
        if missing_total:
            print("FAILED: acknowledged payments without an order row (hard invariant)")
        if self.args.json_out:
            with open(self.args.json_out, "w") as f:
                json.dump({"table": [dict(row, kinds=dict(row["kinds"])) for row in table],
                           "runs": [vars(r) for r in self.runs]}, f, indent=1)

    @staticmethod
    def print_table(table, tail_seconds):
        columns = ["scenario", "opcache", "runs", "agent s", "payments", "acked", "failed"] + list(KINDS) + [
            "failed after exit", "stale", "stale max s", "acked by broken", "exit codes", "rows", "acked w/o row"]
        lines = []
        for row in table:
            lines.append([row["scenario"], row["opcache"], str(row["runs"]), f"{row['seconds']:.1f}",
                          str(row["payments"]), str(row["acked"]), str(row["failed"])]
                         + [str(row["kinds"].get(kind, 0)) for kind in KINDS]
                         + [str(row["failed_after"]), str(row["stale"]), f"{row['stale_max']:.2f}", str(row["broken_acks"]), row["exits"],
                            str(row["rows"]), str(row["missing"])])
        widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c) for i, c in enumerate(columns)]
        print()
        print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for line in lines:
            print("| " + " | ".join(v.ljust(w) for v, w in zip(line, widths)) + " |")
        print("\nfailed after exit: failed payments sent after the agent exited (within the "
              f"{tail_seconds:.0f} s that follow); stale: payments sent after the agent exited and acknowledged by another version than it reported"
              " (stale max s: the latest, in seconds after exit); acked by broken: payments acknowledged by a"
              " broken release's code; rows: order rows in MariaDB for this row's payments.")
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
    parser.add_argument("--rate", type=float, default=80.0, help="target payments a second")
    parser.add_argument("--threads", type=int, default=4, help="payment client threads")
    parser.add_argument("--json-out", help="also write the table and runs as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (servers are stopped)")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
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
