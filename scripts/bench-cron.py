#!/usr/bin/env python3
"""Benchmark: a cron run with nothing to do.

Starts a minimal central API on 127.0.0.1 (Python's http.server; it answers the rollout of the
version already installed), copies the fixture site to a scratch directory, runs
`molam-upgrade upgrade` RUNS times against it, and prints the number of HTTP requests one run
made and the wall time per run (median, p90, min). DESIGN.md's target: one request, under 50 ms.

Usage: scripts/bench-cron.py [path/to/molam-upgrade] [RUNS]
"""
import http.server, json, os, shutil, sqlite3, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/release/molam-upgrade")
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
TOKEN = "bench-token"
requests = []


class API(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        requests.append(self.path)
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.send_response(401); self.end_headers(); return
        body = json.dumps({"id": "r-1", "plugin_name": "molam-form", "version": "3.9.0",
                           "rollout_percentage": 100, "rollout_strategy": "random", "target_countries": [],
                           "target_tiers": [], "status": "active", "error_threshold": 5}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), API)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scratch = tempfile.mkdtemp(prefix="molam-bench-")
    try:
        plugin = os.path.join(scratch, "plugins", "molam-form")
        shutil.copytree(os.path.join(ROOT, "Fixtures/plugins/molam-form/3.9.0/molam-form"), plugin, symlinks=True)
        db = os.path.join(scratch, "site.db")
        with open(os.path.join(ROOT, "Fixtures/site/site.sql")) as sql:
            sqlite3.connect(db).executescript(sql.read())
        token = os.path.join(scratch, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token, 0o600)
        config = os.path.join(scratch, "agent.json")
        with open(config, "w") as f:
            json.dump({"merchant_id": "6f1c2b2e-4c84-4d52-9c4a-2b7c0e6e9a11", "country": "SN", "tier": "gold",
                       "api_url": "http://127.0.0.1:%d" % server.server_address[1], "token_file": token,
                       "state_dir": os.path.join(scratch, "state"),
                       "plugins": [{"name": "molam-form", "plugin_dir": plugin, "db": "sqlite://" + db}]}, f)
        os.chmod(config, 0o600)
        command = [BINARY, "upgrade", "--quiet", "--config", config]
        subprocess.run(command, check=True)          # first run creates the journal; not timed
        before = len(requests)
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            subprocess.run(command, check=True)
            times.append((time.perf_counter() - start) * 1000)
        per_run = (len(requests) - before) / RUNS
        times.sort()
        print("cron run with nothing to do (%s, %d runs)" % (BINARY, RUNS))
        print("  HTTP requests per run: %g" % per_run)
        print("  wall time per run: median %.1f ms, p90 %.1f ms, min %.1f ms"
              % (statistics.median(times), times[int(len(times) * 0.9) - 1], times[0]))
    finally:
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
