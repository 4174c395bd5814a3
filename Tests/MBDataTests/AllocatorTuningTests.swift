import MBData
import Testing

/// The opt-in allocator tuning really reaches glibc: the C shim once compiled to its non-glibc
/// stub (its glibc check came before any header defined `__GLIBC__`), so the tuning was
/// silently skipped and every batch buffer was faulted in again.
@Suite struct AllocatorTuningTests {
    #if os(Linux) && canImport(Glibc)
        @Test func glibcAcceptsEverySetting() {
            #expect(AllocatorTuning.applyForBatchWorkloads())
            // Applied once per process: a second call reports the same outcome.
            #expect(AllocatorTuning.applyForBatchWorkloads())
        }
    #endif
}
