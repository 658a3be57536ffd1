import MolamSQLite

/// The journal's tables, version by version.
extension Journal {
    /// Forward-only schema migrations keyed by `PRAGMA user_version`.
    func migrate() throws {
        let version = Int(try db.scalar("PRAGMA user_version")?.intValue ?? 0)
        if version > Self.schemaVersion {
            throw JournalError(
                "\(path) has schema version \(version), newer than this molam-upgrade understands "
                    + "(\(Self.schemaVersion)); upgrade molam-upgrade itself")
        }
        if version < 1 {
            try db.transaction(.exclusive) {
                try db.execute(Self.schemaV1)
                try db.execute("PRAGMA user_version = 1")
            }
        }
        if version < 2 {
            try db.transaction(.exclusive) {
                try db.executeScript(Self.schemaV2)
                try db.execute("PRAGMA user_version = 2")
            }
        }
    }

    /// Version 2: reports that wait for another report's id (a step needs its upgrade's id, a
    /// rollback's `complete` its `initiate`'s), reports the API refused for good, the highest version
    /// each install has accepted (rollback-attack protection), and backups tied to their install.
    private static let schemaV2 = """
        ALTER TABLE outbox ADD COLUMN run_id TEXT;
        ALTER TABLE outbox ADD COLUMN depends_on INTEGER REFERENCES outbox(seq);
        ALTER TABLE outbox ADD COLUMN ref_field TEXT;
        ALTER TABLE outbox ADD COLUMN expects_id INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE outbox ADD COLUMN response_id TEXT;
        ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
        UPDATE outbox SET status = 'delivered' WHERE delivered_at IS NOT NULL;
        CREATE INDEX outbox_pending ON outbox(status, seq);
        CREATE TABLE accepted_versions (
            plugin_dir TEXT PRIMARY KEY,
            plugin TEXT NOT NULL,
            version TEXT NOT NULL,
            accepted_at TEXT NOT NULL
        );
        ALTER TABLE backups ADD COLUMN plugin_dir TEXT;
        UPDATE backups SET plugin_dir = (SELECT plugin_dir FROM runs WHERE runs.id = backups.run_id);
        """

    private static let schemaV1 = """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            trigger TEXT NOT NULL,
            plugin TEXT NOT NULL,
            plugin_dir TEXT NOT NULL,
            from_version TEXT,
            to_version TEXT,
            status TEXT NOT NULL,
            rollback_status TEXT,
            error TEXT,
            exit_code INTEGER,
            dry_run INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            state TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX runs_status ON runs(status);
        CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            duration_ms INTEGER,
            detail TEXT,
            error TEXT
        );
        CREATE INDEX steps_run ON steps(run_id, id);
        CREATE TABLE backups (
            id TEXT PRIMARY KEY,
            plugin TEXT NOT NULL,
            version TEXT NOT NULL,
            path TEXT NOT NULL,
            created_at TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            run_id TEXT,
            file_count INTEGER NOT NULL,
            tables TEXT NOT NULL,
            deleted_at TEXT
        );
        CREATE TABLE rollbacks (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            trigger TEXT NOT NULL,
            reason TEXT NOT NULL,
            from_version TEXT,
            to_version TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            duration_ms INTEGER,
            status TEXT NOT NULL,
            files_restored INTEGER NOT NULL DEFAULT 0,
            db_restored INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            payload TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            delivered_at TEXT,
            last_error TEXT
        );
        """
}
