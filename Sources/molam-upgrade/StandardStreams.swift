import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes to stdout and stderr with write(2) loops.
///
/// FileHandle's `write(_:)` traps when the reader has gone (`status | head -1` closes the pipe
/// after one line): the agent died with a backtrace and exit 132, even after a successful upgrade.
/// SIGPIPE is ignored (main.swift), so a closed pipe shows up here as EPIPE: the output is
/// dropped quietly and the command keeps its own exit code. Output is a courtesy; the journal
/// holds what happened.
enum StandardStreams {
    static func out(_ text: String) { write(text, to: STDOUT_FILENO) }
    static func err(_ text: String) { write(text, to: STDERR_FILENO) }

    static func out(_ data: Data) { write(data, to: STDOUT_FILENO) }

    static func write(_ text: String, to fd: Int32) {
        write(Data(text.utf8), to: fd)
    }

    /// Writes all of `data`, retrying short writes and EINTR, waiting out EAGAIN (a non-blocking
    /// descriptor inherited from the caller); stops at the first other error (EPIPE, EBADF, EIO).
    static func write(_ data: Data, to fd: Int32) {
        data.withUnsafeBytes { raw in
            guard var next = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let written = Glibc.write(fd, next, left)
                if written > 0 {
                    next += written
                    left -= written
                    continue
                }
                if written < 0 && errno == EINTR { continue }
                if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&waiting, 1, 1000)
                    continue
                }
                return
            }
        }
    }
}
