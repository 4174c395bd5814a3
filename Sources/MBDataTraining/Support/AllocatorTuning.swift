import CMallocTuning
import Synchronization

/// Process-wide allocator settings for batch workloads: an opt-in for applications, never
/// applied by the library behind their back.
///
/// A loader or prefetcher allocates and frees a buffer of a batch's size (hundreds of KB to
/// MBs) for every batch, on one thread, and frees it on another. By default glibc serves such
/// sizes with fresh `mmap`s or trims its heaps right after the free, so every batch
/// page-faults and zero-fills its buffer again (a quarter of the loader's CPU time under
/// `perf`). ``applyForBatchWorkloads()`` raises glibc's mmap threshold (256 MiB), trim
/// threshold (1 GiB) and top pad (64 MiB) with `mallopt(3)`, so those pages are kept for
/// reuse (Benchmarks/README.md, loader). Memory stays bounded by the prefetch depth, since
/// the pages are reused, not accumulated — but the settings apply to every allocation of the
/// whole process, which is why the application decides: `mbdata` turns them on for ingest,
/// shard and serve, the samples and benchmarks do too.
public enum AllocatorTuning {
    private static let applied = Mutex<Bool?>(nil)

    /// Applies the settings once per process (later calls return the first result).
    ///
    /// - Returns: `true` when glibc accepted them; `false` where the C library is not glibc
    ///   or refused a setting (nothing then changes).
    @discardableResult
    public static func applyForBatchWorkloads() -> Bool {
        applied.withLock { applied in
            if let applied { return applied }
            let result = mbdata_tune_malloc(256 << 20, 1 << 30, 64 << 20) == 1
            applied = result
            return result
        }
    }

    /// Returns the allocator's free memory to the system (`malloc_trim(3)`): under
    /// ``applyForBatchWorkloads()`` glibc keeps up to 1 GiB of freed memory for reuse, which a
    /// one-off peak (a start-up scan) would otherwise leave resident for the process's life.
    /// Does nothing where the C library is not glibc.
    public static func releaseFreeMemory() {
        mbdata_release_free_memory()
    }
}
