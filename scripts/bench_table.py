"""The Markdown table of scripts/bench-reference.py, from its raw figures (medians of the runs)."""
import statistics


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def seconds(value):
    return "n/a" if value is None else ("%.3f s" % value if value < 10 else "%.1f s" % value)


def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f ×" % (a / b)


def mib(kib):
    return "n/a" if kib is None else "%.1f MiB" % (kib / 1024)


def ms(value):
    return "n/a" if value is None else "%.1f ms" % value


def render(raw, sizes):
    """The table: the SQLite rows (unless `sizes` is None: a --mysql-only run), then the MySQL section."""
    rows = sqlite_rows(raw, sizes) if sizes is not None else []
    if "mysql" in raw:
        rows += mysql_rows(raw["mysql"])
    work = raw["workload"]
    lines = ["Reference workload: %d files, %.1f MB unpacked, zip %.1f MB; medians of %d runs; %.0f s in all."
             % (work["files"], work["unpacked_bytes"] / 1e6, work["zip_bytes"] / 1e6, raw["runs"], raw["bench_seconds"]),
             "", "| figure | molam-upgrade | naive shell | ratio / target |", "|---|---|---|---|"]
    lines += ["| %s | %s | %s | %s |" % row for row in rows]
    return "\n".join(lines)


def sqlite_rows(raw, sizes):
    failing, shell, good, small = raw["failing"], raw["shell"], raw["good"], raw["small"]
    mid, large = str(sizes[1]), str(sizes[-1])
    rows = []
    for size in map(str, sizes):
        molam = med([r.get("rollback_ms") for r in failing[size]])
        molam = None if molam is None else molam / 1000
        naive = med([r["rollback"]["total"] for r in shell[size]])
        verdict = "met" if molam is not None and molam <= 0.1 else "NOT met"
        rows.append(("automatic rollback, files + tables (`rollbacks.duration_ms`), %s MiB of owned tables" % size,
                     "%s (wall of the failing run %s)" % (seconds(molam), seconds(med([r["wall_s"] for r in failing[size]]))),
                     seconds(naive), "%s; target ≤ 0.1 s: %s" % (ratio(molam, naive), verdict)))
    watch, watch_shell = raw["watch_molam"], raw["watch_shell"]
    schema = watch["schema"]
    rows.append(("old code running on the new schema during a rollback (watcher samples, %s MiB)" % large,
                 "%d of %d samples" % (schema["old_code_on_new_schema"], schema["samples"]),
                 "%d of %d samples" % (watch_shell["schema"]["old_code_on_new_schema"], watch_shell["schema"]["samples"]),
                 "target 0"))
    upgrade = med([r["upgrade"]["wall_s"] for r in good])
    naive_upgrade = med([r["upgrade"]["total"] for r in shell[mid]])
    rows.append(("successful upgrade, wall, %s MiB" % mid, seconds(upgrade), seconds(naive_upgrade),
                 "%s; target ≤ 0.5 ×" % ratio(upgrade, naive_upgrade)))
    stage = med([r["steps_ms"].get("stage") for r in failing[large]])
    backup = med([r["steps_ms"].get("backup") for r in failing[large]])
    unzip = med([r["upgrade"]["unzip"] for r in shell[large]])
    tar_cp = med([r["upgrade"]["tar_czf"] + r["upgrade"]["cp_db"] for r in shell[large]])
    rows.append(("stage (extract %d files) / backup, %s MiB" % (raw["workload"]["files"], large),
                 "%s / %s (journal `steps`)" % (seconds(stage and stage / 1000), seconds(backup and backup / 1000)),
                 "%s unzip / %s tar -czf + cp" % (seconds(unzip), seconds(tar_cp)),
                 "%s / %s" % (ratio(stage and stage / 1000, unzip), ratio(backup and backup / 1000, tar_cp))))
    # The operator's rollback is a pipeline run of its own: its swap + migrate (down migrations,
    # table restore) are what change the site; wall includes its backup of the current version.
    operator = med([r["rollback"]["steps_ms"].get("swap", 0) + r["rollback"]["steps_ms"].get("migrate", 0)
                    for r in good])
    operator = None if operator is None else operator / 1000
    naive_rollback = med([r["rollback"]["tar_xzf"] + r["rollback"]["cp_db"] for r in shell[mid]])
    rows.append(("operator `rollback` after a successful upgrade, %s MiB (journal swap + migrate steps)" % mid,
                 "%s (wall %s)" % (seconds(operator), seconds(med([r["rollback"]["wall_s"] for r in good]))),
                 "%s tar -xzf + cp" % seconds(naive_rollback),
                 "%s; target ≤ 0.1 s: %s" % (ratio(operator, naive_rollback),
                                             "met" if operator is not None and operator <= 0.1 else "NOT met")))
    runs = [r for size in map(str, sizes) for r in failing[size]] + [r[k] for r in good for k in ("upgrade", "rollback")]
    large_rss, small_rss = max(r["rss_kib"] for r in runs), max(r["rss_kib"] for r in small)
    large_own, small_own = max(r["own_rss_kib"] for r in runs), max(r["own_rss_kib"] for r in small)
    rows.append(("peak RSS, large plugin / small plugin (fixture): the agent's own (VmHWM); with its children "
                 "(wait4 ru_maxrss: php's syntax check, smoke commands)",
                 "own %s / %s; with children %s / %s" % (mib(large_own), mib(small_own), mib(large_rss), mib(small_rss)),
                 "", "target < 40 MiB (own): %s" % ("met" if max(large_own, small_own) < 40 * 1024 else "NOT met")))
    main, main_shell = watch["main_file"], watch_shell["main_file"]
    rows.append(("plugin main file missing during swap / rollback (stat() loop, failing upgrade, %s MiB)" % large,
                 "%d of %d checks (longest %s)" % (main["misses"], main["checks"], ms(main["longest_missing_ms"])),
                 "%d of %d checks (longest %s)" % (main_shell["misses"], main_shell["checks"],
                                                  ms(main_shell["longest_missing_ms"])),
                 "target 0"))
    client, client_shell = watch["client"], watch_shell["client"]
    rows.append(("site client writing an order every ~3 ms, %s MiB: longest write upgrade / rollback (of which "
                 "waiting for another connection's lock), rows lost" % large,
                 "%s / %s (%s / %s), %s of %d lost (%d errors)" % (
                     ms(client["longest_write_ms_upgrade"]), ms(client["longest_write_ms_rollback"]),
                     ms(client.get("longest_wait_ms_upgrade")), ms(client.get("longest_wait_ms_rollback")),
                     client["rows_lost"], client["acknowledged"], client["errors"]),
                 "%s / %s (%s / %s), %s of %d lost (%d errors)" % (
                     ms(client_shell["longest_write_ms_upgrade"]), ms(client_shell["longest_write_ms_rollback"]),
                     ms(client_shell.get("longest_wait_ms_upgrade")), ms(client_shell.get("longest_wait_ms_rollback")),
                     client_shell["rows_lost"], client_shell["acknowledged"], client_shell["errors"]),
                 "target a few ms, 0 lost"))
    return rows


def mysql_rows(mysql):
    """The "MySQL 100 MiB" section: a failing upgrade's rollback under a live writer, a good upgrade."""
    failing, good, size = mysql["failing"], mysql["good"], mysql["mib"]
    owned = med([r["owned_bytes"] for r in failing + good])
    rows = [("**MySQL %d MiB** (%s, private server; owned tables %s on disk, %d seed rows; "
             "a live writer inserts an order every ~3 ms through one `mariadb` client)"
             % (size, mysql["server"], mib_bytes(owned), mysql["seed_rows"]), "", "", "")]
    window = med([r.get("rollback_ms") for r in failing])
    step = med([r["steps_ms"].get("rollback") for r in failing])
    window, step = (None if v is None else v / 1000 for v in (window, step))
    rows.append(("MySQL automatic rollback, files + tables, live writer: window (`rollbacks.duration_ms`) / "
                 "`rollback` step (`steps.duration_ms`, smoke checks included)",
                 "%s / %s (wall of the failing run %s)" % (seconds(window), seconds(step),
                                                         seconds(med([r["wall_s"] for r in failing]))),
                 "", "target ≤ 0.5 s: %s" % verdict(window, 0.5)))
    clients = [r["client"] for r in failing]
    lost = sum(c["rows_lost"] for c in clients)
    rows.append(("MySQL acknowledged orders lost by the rollback (summed over the runs); longest write "
                 "upgrade / rollback (medians)",
                 "%d of %d lost (%d errors); %s / %s"
                 % (lost, sum(c["acknowledged"] for c in clients), sum(c["errors"] for c in clients),
                    ms(med([c["longest_write_ms_upgrade"] for c in clients])),
                    ms(med([c["longest_write_ms_rollback"] for c in clients]))),
                 "", "target 0: %s" % ("met" if lost == 0 else "NOT met")))
    rows.append(("MySQL successful upgrade, wall (backup step: shadow copy + dump %s)"
                 % seconds(ms_to_s(med([r["steps_ms"].get("backup") for r in good]))),
                 seconds(med([r["wall_s"] for r in good])), "", ""))
    runs = failing + good
    own, with_children = max(r["own_rss_kib"] for r in runs), max(r["rss_kib"] for r in runs)
    rows.append(("MySQL peak RSS: the agent's own (VmHWM); with its children (wait4 ru_maxrss)",
                 "own %s; with children %s" % (mib(own), mib(with_children)), "",
                 "target < 40 MiB (own): %s" % ("met" if own < 40 * 1024 else "NOT met")))
    return rows


def verdict(value, target):
    return "met" if value is not None and value <= target else "NOT met"


def ms_to_s(value):
    return None if value is None else value / 1000


def mib_bytes(value):
    return "n/a" if value is None else "%.1f MiB" % (value / 2**20)


def rollback_statements(mysql):
    """Where the MySQL rollback window's time goes, from --mysql-statement-log (first failing run)."""
    lines = []
    for number, run in enumerate(mysql["failing"], 1):
        statements = run.get("rollback_statements")
        if statements is None:
            continue
        window = run.get("rollback_ms")
        total = sum(s["seconds"] for s in statements)
        kinds = {}
        for s in statements:
            words = s["sql"].split()
            kind = " ".join(words[:2]).upper() if words else "?"
            count, seconds_ = kinds.get(kind, (0, 0.0))
            kinds[kind] = (count + 1, seconds_ + s["seconds"])
        lines.append("MySQL rollback window of failing run %d: %s ms; %d statements of the agent took %.0f ms in the "
                     "server (the rest: client round trips, file exchange, waits between statements)."
                     % (number, window, len(statements), total * 1000))
        lines.append("")
        lines.append("| statement kind | count | server time |")
        lines.append("|---|---|---|")
        for kind, (count, seconds_) in sorted(kinds.items(), key=lambda item: -item[1][1])[:12]:
            lines.append("| `%s` | %d | %.1f ms |" % (kind, count, seconds_ * 1000))
        lines.append("")
        lines.append("| slowest statements | thread | server time |")
        lines.append("|---|---|---|")
        for s in sorted(statements, key=lambda s: -s["seconds"])[:10]:
            lines.append("| `%s` | %d | %.1f ms |" % (s["sql"][:110].replace("|", "\\|"), s["thread"], s["seconds"] * 1000))
        lines.append("")
    return "\n".join(lines) if lines else "(no statements logged)"
