import Foundation
import MolamSQLite

/// Backups: recorded when taken, listed per install, marked when deleted.
extension Journal {
    public func addBackup(_ backup: BackupRecord) throws(JournalError) {
        try write("record backup") {
            try db.run(
                """
                INSERT INTO backups (id, plugin, version, path, created_at, size_bytes, run_id, file_count,
                                     tables, plugin_dir)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [.text(backup.id), .text(backup.plugin), .text(backup.version), .text(backup.path),
                 .text(backup.createdAt), .integer(backup.sizeBytes), Self.optionalText(backup.runID),
                 .integer(Int64(backup.fileCount)), .text(backup.tables.joined(separator: "\n")),
                 Self.optionalText(backup.pluginDirectory)])
        }
    }

    /// Backups still on disk, newest first; of one plugin, and of one install when `pluginDirectory`
    /// is given (two shops on one host may run the same plugin).
    public func backups(
        plugin: String? = nil, pluginDirectory: String? = nil
    ) throws(JournalError) -> [BackupRecord] {
        try read("read backups") {
            try db.query(
                """
                SELECT * FROM backups WHERE deleted_at IS NULL AND (?1 IS NULL OR plugin = ?1)
                    AND (?2 IS NULL OR plugin_dir IS NULL OR plugin_dir = ?2)
                ORDER BY rowid DESC
                """,
                [Self.optionalText(plugin), Self.optionalText(pluginDirectory)]
            ).map { row in
                BackupRecord(
                    id: row["id"].stringValue ?? "",
                    plugin: row["plugin"].stringValue ?? "",
                    version: row["version"].stringValue ?? "",
                    path: row["path"].stringValue ?? "",
                    createdAt: row["created_at"].stringValue ?? "",
                    sizeBytes: row["size_bytes"].intValue ?? 0,
                    runID: row["run_id"].stringValue,
                    fileCount: Int(row["file_count"].intValue ?? 0),
                    tables: (row["tables"].stringValue ?? "").split(separator: "\n").map(String.init),
                    pluginDirectory: row["plugin_dir"].stringValue)
            }
        }
    }

    public func markBackupDeleted(id: String, now: Date) throws(JournalError) {
        try write("mark backup deleted") {
            try db.run(
                "UPDATE backups SET deleted_at = ? WHERE id = ?", [.text(Self.timestamp(now)), .text(id)])
        }
    }
}
