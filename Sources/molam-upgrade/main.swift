import Foundation
#if canImport(Glibc)
import Glibc
#endif

// libcurl runs with CURLOPT_NOSIGNAL, so it no longer ignores SIGPIPE for us: a peer that hangs up
// must not kill the agent in the middle of a rollback.
signal(SIGPIPE, SIG_IGN)
exit(MolamUpgradeCommand.main(Array(CommandLine.arguments.dropFirst())))
