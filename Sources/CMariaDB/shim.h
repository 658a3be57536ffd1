#ifndef CMARIADB_SHIM_H
#define CMARIADB_SHIM_H
// libmariadb (MariaDB Connector/C 3.3), the MySQL client library. Everything it exports is
// callable from Swift as is; `mysql_library_init` is a macro alias of `mysql_server_init`, which
// Swift cannot import, so MolamMySQL calls `mysql_server_init` directly.
#include <mysql.h>
#endif
