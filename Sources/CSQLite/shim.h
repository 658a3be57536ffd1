#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import:
// bind calls that need SQLite to copy the buffer go through these.
static inline int csqlite_bind_text_transient(sqlite3_stmt *stmt, int index, const char *text, int length) {
    return sqlite3_bind_text(stmt, index, text, length, SQLITE_TRANSIENT);
}
static inline int csqlite_bind_blob_transient(sqlite3_stmt *stmt, int index, const void *bytes, int length) {
    return sqlite3_bind_blob(stmt, index, bytes, length, SQLITE_TRANSIENT);
}

// sqlite3_db_config is variadic, which Swift cannot call: this typed wrapper covers the
// int-valued options (SQLITE_DBCONFIG_ENABLE_TRIGGER and friends), passing -1 to only read.
static inline int csqlite_db_config_int(sqlite3 *db, int op, int value, int *current) {
    return sqlite3_db_config(db, op, value, current);
}
#endif
