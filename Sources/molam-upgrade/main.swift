import Foundation
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

// Before any thread starts: freed memory goes back to the OS or to the next allocation, whichever
// thread makes it (MallocRetention).
MallocRetention.limit()
// libcurl runs with CURLOPT_NOSIGNAL, so it no longer ignores SIGPIPE for us: a peer that hangs up
// must not kill the agent in the middle of a rollback.
signal(SIGPIPE, SIG_IGN)
// Orphans of a smoke command (a daemon that double-forks and calls setsid) are re-parented to the
// agent rather than init, so they are killed when their check ends (DescendantReaper).
DescendantReaper.adoptOrphans()
exit(MolamUpgradeCommand.main(Array(CommandLine.arguments.dropFirst())))
