import CSupport

/// How much freed memory glibc's malloc keeps resident, set once by the agent at start.
///
/// Measured on the reference workload (5,000 files, 100 MiB of owned tables), glibc's defaults cost
/// the agent about 2 MiB of its peak RSS for memory it had already freed:
/// - The files backup runs on a thread of its own, which glibc gives an arena of its own (mallopt(3),
///   M_ARENA_MAX): what `stage` freed on the main thread (its header pass keeps a few MiB of
///   bookkeeping for 5,000 entries) cannot be reused there, so the thread touches fresh pages for its
///   manifest beside the resident, unused ones. One arena serves both threads; the backup's two
///   threads allocate little next to their I/O, and glibc's per-thread cache takes most small blocks
///   without the arena's lock (backup step time unchanged within noise).
/// - glibc raises its mmap threshold to the size of any mmap'd block freed (up to 32 MiB), after
///   which large short-lived blocks (256 KiB copy buffers, compressor contexts, arrays of 5,000
///   entries) come from the heap, where freeing them returns nothing while a small block sits above.
///   Pinned at its default, 128 KiB, they stay mmap'd and are unmapped when freed.
public enum MallocRetention {
    /// Applies both settings; call before any thread starts. False if glibc refused one (the agent
    /// then runs with glibc's defaults, which only cost memory).
    @discardableResult
    public static func limit() -> Bool { csys_limit_malloc_retention() == 0 }
}
