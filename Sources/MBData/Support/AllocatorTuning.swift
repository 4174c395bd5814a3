#if canImport(Glibc)
    import Glibc

    // glibc's mallopt(3); <malloc.h> is not part of the Glibc module.
    @_silgen_name("mallopt")
    private func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
    private let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
    private let topPad: Int32 = -2  // M_TOP_PAD
    private let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
#endif

/// Keeps glibc from returning batch-sized blocks to the kernel after every batch.
///
/// A loader allocates and frees a buffer of a batch's size (hundreds of KB to MBs) for every
/// batch, on worker threads, and frees it on another. By default glibc serves such sizes
/// with fresh `mmap`s or trims its heaps right after the free, so every batch page-faults
/// and zero-fills its buffer again (a quarter of the loader's CPU time under `perf`). Raising
/// the mmap and trim thresholds keeps those pages for reuse (Benchmarks/README.md, loader).
/// Process-wide, applied once when the first loader or prefetcher starts; memory stays bounded by the
/// prefetch depth, since the pages are reused, not accumulated.
enum AllocatorTuning {
    private static let applied: Void = {
        #if canImport(Glibc)
            _ = mallopt(mmapThreshold, 256 << 20)
            _ = mallopt(trimThreshold, 1 << 30)
            _ = mallopt(topPad, 64 << 20)
        #endif
    }()

    static func apply() { _ = applied }
}
