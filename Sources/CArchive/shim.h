#ifndef CARCHIVE_SHIM_H
#define CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>

/// archive_set_error is printf-style (variadic), which Swift cannot call: the stream callbacks pass
/// their message through "%s" so that a '%' in a path is never read as a conversion.
static inline void carchive_set_error(struct archive *a, int code, const char *message) {
    archive_set_error(a, code, "%s", message);
}
#endif
