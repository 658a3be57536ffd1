"""A throw-away WordPress + MariaDB shop on loopback: private mariadbd, a copy of Debian's
WordPress with a standalone wp-config.php, and `php -S` with a chosen opcache setting.

Every process is started in its own session and stopped by its pid (TERM, then KILL after a
deadline), so that Ctrl-C reaches the harness only and the harness decides the order of shutdown.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

DB_NAME = "shop"
DB_USER = "shop"
TABLE_PREFIX = "shop7_"
PLUGIN = "molam-form"
ORDERS_TABLE = TABLE_PREFIX + "molam_orders"
LEDGER_TABLE = "molam_schema_migrations"  # the agent's migration ledger (no site prefix)
AGENT_USER = "molam_agent"  # the confined account the harness creates for the agent


def quote_identifier(name):
    return "`" + name.replace("`", "``") + "`"


class SiteError(Exception):
    pass


def wait_until(what, predicate, timeout, interval=0.05):
    """Polls `predicate` until it is true; raises SiteError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise SiteError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def group_members(pgid):
    """Live (non-zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def stop_process(process, name, timeout=30.0):
    """TERM to the process's whole group (it was started in a session of its own: php -S forks
    workers that outlive a TERMed parent), wait up to `timeout`, then KILL. Returns the seconds."""
    if process is None:
        return 0.0
    started = time.monotonic()
    pgid = process.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = started + timeout
    while time.monotonic() < deadline:
        process.poll()
        if process.returncode is not None and not group_members(pgid):
            return time.monotonic() - started
        time.sleep(0.05)
    print(f"  {name} (process group {pgid}) ignored TERM for {timeout:.0f} s; killing it")
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)
    return time.monotonic() - started


class MariaDB:
    """A private mariadbd on a unix socket, no TCP."""

    def __init__(self, root, root_auth="socket", server_options=("--innodb-buffer-pool-size=64M",
                                                                   "--innodb-flush-log-at-trx-commit=2")):
        """root_auth: how root logs in (`socket`: the OS user root; `normal`: no password, any OS
        user). server_options: mariadbd's tuning (make bench gives it a larger buffer pool)."""
        self.root = root
        self.datadir = os.path.join(root, "mysql")
        self.socket = os.path.join(root, "mysqld.sock")
        self.pidfile = os.path.join(root, "mysqld.pid")
        self.log = os.path.join(root, "mysqld.log")
        self.password = secrets.token_hex(12)
        self.process = None
        self.root_auth = root_auth
        self.server_options = list(server_options)

    def start_server(self):
        """mariadb-install-db, then mariadbd on the socket; returns once it accepts connections."""
        os.makedirs(self.datadir, mode=0o700)
        with open(self.log, "ab") as log:
            subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                 "--skip-test-db", f"--auth-root-authentication-method={self.root_auth}"],
                stdout=log, stderr=log, check=True)
            command = ["mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                       "--skip-networking", f"--pid-file={self.pidfile}", f"--log-error={self.log}",
                       *self.server_options]
            if os.getuid() == 0:
                command.append("--user=root")
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        wait_until("mariadbd socket", self._accepts, timeout=60)

    def start(self):
        """The server and the shop's database and account."""
        self.start_server()
        self.sql(f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4;"
                 f"CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY '{self.password}';"
                 f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'localhost';")

    def _accepts(self):
        if self.process.poll() is not None:
            raise SiteError(f"mariadbd exited with {self.process.returncode}; see {self.log}")
        if not os.path.exists(self.socket):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket)
                return True
            except OSError:
                return False

    def sql(self, statements, database=None):
        """Runs SQL through the mariadb client as the database's superuser (socket auth); returns rows."""
        command = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root" if os.getuid() == 0
                   else os.environ.get("USER", "root"), "-N", "-B", "-e", statements]
        if database:
            command.append(database)
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SiteError(f"mariadb: {result.stderr.strip()}")
        return [line.split("\t") for line in result.stdout.splitlines()]

    def create_agent_account(self, directory, grants):
        """The confined account (AGENT_USER) with `grants` (what `molam-upgrade grants` prints, as an
        administrator would run it), and its 0600 password file in `directory`; returns (dsn,
        password_file)."""
        password = secrets.token_hex(12)
        self.sql(f"CREATE USER '{AGENT_USER}'@'localhost' IDENTIFIED BY '{password}';" + "".join(grants))
        path = os.path.join(directory, "molam-agent.db-password")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(password + "\n")
        return f"mysql://{AGENT_USER}@localhost/{DB_NAME}?socket={self.socket}", path

    def schema_state(self):
        """(applied migration versions, the orders table's columns, the agent's leftover tables)."""
        rows = self.sql(
            f"SELECT 'column', column_name FROM information_schema.columns WHERE table_schema = '{DB_NAME}' "
            f"AND table_name = '{ORDERS_TABLE}' UNION ALL SELECT 'table', table_name FROM information_schema.tables "
            f"WHERE table_schema = '{DB_NAME}' AND table_name LIKE '\\_molam\\_%'", database=DB_NAME)
        columns = {name for kind, name in rows if kind == "column"}
        leftovers = sorted(name for kind, name in rows if kind == "table")
        applied = []
        if self.sql(f"SHOW TABLES LIKE '{LEDGER_TABLE}'", database=DB_NAME):
            applied = [int(v) for (v,) in self.sql(f"SELECT version FROM {LEDGER_TABLE} ORDER BY version",
                                                   database=DB_NAME)]
        return applied, columns, leftovers

    def stop(self):
        return stop_process(self.process, "mariadbd", timeout=60)


class WordPressSite:
    """Debian's WordPress copied under `root`, installed into `db`, with molam-form active."""

    def __init__(self, root, db, repo):
        self.root = root
        self.db = db
        self.repo = repo
        self.wpdir = os.path.join(root, "wordpress")
        self.plugin_dir = os.path.join(self.wpdir, "wp-content", "plugins", PLUGIN)
        self.wp_config = os.path.join(self.wpdir, "wp-config.php")
        self.port = None
        self.server = None
        self.server_log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def choose_port(self):
        """One port for the whole run: installed manifests name it in their http smoke checks."""
        self.port = free_port()
        return self.port

    def create(self, initial_release_tree):
        # -L: Debian's tree links 24 files into /usr/share/javascript and friends.
        subprocess.run(["cp", "-rL", "/usr/share/wordpress", self.wpdir], check=True)
        content = os.path.join(self.wpdir, "wp-content")
        for sub in ("themes", "plugins", "mu-plugins", "uploads"):
            os.makedirs(os.path.join(content, sub), exist_ok=True)
        shutil.copytree(os.path.join(self.repo, "Fixtures", "wordpress", "molam-shop-theme"),
                        os.path.join(content, "themes", "molam-shop"))
        shutil.copytree(initial_release_tree, self.plugin_dir)
        with open(os.path.join(content, "mu-plugins", "molam-e2e-site.php"), "w") as f:
            f.write(MU_PLUGIN)
        with open(os.path.join(self.wpdir, "molam-e2e-opcache-reset.php"), "w") as f:
            f.write(OPCACHE_RESET)
        self.write_config()
        script = os.path.join(self.repo, "scripts", "wordpress", "wp-install.php")
        result = subprocess.run(["php", script, self.wpdir, f"127.0.0.1:{self.port}"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise SiteError(f"wp-install.php failed: {result.stdout.strip()} {result.stderr.strip()}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def write_config(self):
        """A standalone wp-config.php (Debian's only loads /etc/wordpress/config-HOST.php)."""
        keys = "".join(f"define('{k}', '{secrets.token_hex(32)}');\n" for k in (
            "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
            "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
        config = WP_CONFIG.format(
            db_name=DB_NAME, db_user=DB_USER, db_password=self.db.password, db_socket=self.db.socket,
            prefix=TABLE_PREFIX, url=self.url, content=os.path.join(self.wpdir, "wp-content"), keys=keys)
        path = os.path.join(self.wpdir, "wp-config.php")
        with open(path + ".new", "w") as f:
            f.write(config)
        os.replace(path + ".new", path)

    def serve(self, revalidate_freq, workers=4):
        """Starts `php -S`; revalidate_freq None keeps Debian's default opcache setting (2 s)."""
        wait_until(f"port {self.port} free again", self._port_free, timeout=30, interval=0.2)
        label = "default" if revalidate_freq is None else str(revalidate_freq)
        self.server_log = os.path.join(self.root, f"php-server-revalidate-{label}.log")
        command = ["php"]
        if revalidate_freq is not None:
            command += ["-d", f"opcache.revalidate_freq={revalidate_freq}"]
        command += ["-S", f"127.0.0.1:{self.port}", "-t", self.wpdir]
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS=str(workers))
        with open(self.server_log, "ab") as log:
            self.server = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=self.wpdir,
                                           start_new_session=True)
        wait_until(f"php -S on port {self.port}", self._answers, timeout=30)

    def _port_free(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
                return True
            except OSError:
                return False

    def _answers(self):
        if self.server.poll() is not None:
            raise SiteError(f"php -S exited with {self.server.returncode}; see {self.server_log}")
        return self.version() is not None

    def version(self):
        """The version the site's plugin reports, or None."""
        try:
            with urllib.request.urlopen(f"{self.url}/?rest_route=/molam/v1/version", timeout=5) as answer:
                return json.loads(answer.read()).get("version")
        except Exception:
            return None

    def opcache_settings(self):
        try:
            with urllib.request.urlopen(f"{self.url}/molam-e2e-opcache-reset.php?status=1", timeout=5) as answer:
                return answer.read().decode().strip()
        except Exception as error:
            return f"unknown ({error})"

    def stop_server(self):
        elapsed = stop_process(self.server, "php -S", timeout=15)
        self.server = None
        return elapsed

    def order_rows(self, table=ORDERS_TABLE):
        """{reference: id} of every row of the plugin's orders table (or `table`, if it exists)."""
        if table != ORDERS_TABLE and not self.db.sql(f"SHOW TABLES LIKE '{table}'", database=DB_NAME):
            return {}
        rows = self.db.sql(f"SELECT reference, id FROM {quote_identifier(table)}", database=DB_NAME)
        return {reference: int(order_id) for reference, order_id in rows}


WP_CONFIG = """<?php
// Written by molam-upgrade's scripts/wordpress/site.py for a throw-away shop on loopback.
define('DB_NAME', '{db_name}');
define('DB_USER', '{db_user}');
define('DB_PASSWORD', '{db_password}');
define('DB_HOST', 'localhost:{db_socket}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = '{prefix}';
{keys}
define('WP_HOME', '{url}');
define('WP_SITEURL', '{url}');
define('WP_CONTENT_DIR', '{content}');
define('WP_CONTENT_URL', '{url}/wp-content');
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('WP_DEBUG', false);
define('WP_DEBUG_DISPLAY', false);

// Registered before WordPress's own fatal error handler, so it runs first: names the fatal
// error in a response header while headers can still be sent, for the payment client to classify.
register_shutdown_function(function () {{
    $error = error_get_last();
    $fatal = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;
    if ($error && ($error['type'] & $fatal) && !headers_sent()) {{
        $message = preg_replace('/\\s+/', ' ', $error['message']);
        header('X-Molam-E2E-Fatal: ' . substr($message, 0, 300));
    }}
}});

if (!defined('ABSPATH')) {{
    define('ABSPATH', __DIR__ . '/');
}}
require_once ABSPATH . 'wp-settings.php';
"""

MU_PLUGIN = """<?php
/**
 * Plugin Name: molam-upgrade e2e site
 * Description: No mail from the throw-away test shop (WordPress mails the admin on a fatal error).
 */
if (!function_exists('wp_mail')) {
    function wp_mail($to, $subject, $message, $headers = '', $attachments = array()) {
        return false;
    }
}
"""

# Resets the web server's opcache (shared by php -S's forked workers); `?status=1` only reports.
OPCACHE_RESET = """<?php
if (!in_array($_SERVER['REMOTE_ADDR'] ?? '', array('127.0.0.1', '::1'), true)) {
    http_response_code(403);
    exit;
}
header('Content-Type: text/plain');
if (isset($_GET['status'])) {
    echo 'opcache.enable=' . ini_get('opcache.enable') . ' revalidate_freq=' . ini_get('opcache.revalidate_freq')
        . ' validate_timestamps=' . ini_get('opcache.validate_timestamps') . "\\n";
    exit;
}
if (!function_exists('opcache_reset') || !opcache_reset()) {
    http_response_code(500);
    echo "opcache_reset unavailable\\n";
    exit;
}
echo "opcache reset\\n";
"""
