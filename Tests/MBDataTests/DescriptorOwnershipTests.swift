import Foundation
import Testing

@testable import MBData

#if canImport(Glibc)
    import Glibc
#endif

/// A descriptor is closed once, by its owner.
///
/// A file source that refused its path (a directory, a failed seek) closed its descriptor and
/// threw; a class whose initializer throws once every stored property is set is deinitialized,
/// and the deinit closed the same number again. Between the two closes another thread may
/// have opened a file under that number: in the test process, once in about fifty runs, the
/// rollback journal SQLite had just opened for an ingest of another test, whose next write
/// then failed with SQLITE_IOERR ("disk I/O error" at an `UPDATE mbdata_ingest_log`).
@Suite struct DescriptorOwnershipTests {
    /// The second `close` of a number fails with EBADF when no other thread reused it in
    /// between (the window the failure needed is microseconds wide, so the test looks at
    /// the trace the second close leaves instead: `errno`, on this thread, right after).
    @Test("a refused file source closes its descriptor once", arguments: ["directory", "seek"])
    func refusedSourceClosesItsDescriptorOnce(refusal: String) throws {
        let dir = try TemporaryDirectory()
        let folder = dir.path("folder.jsonl")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let fifo = dir.path("pipe.jsonl")
        #expect(mkfifo(fifo, 0o644) == 0)
        // A FIFO opened for writing too never blocks the read-only open; it cannot seek.
        let writer = open(fifo, O_RDWR | O_CLOEXEC)
        defer { close(writer) }
        errno = 0
        do {
            _ = try refusal == "directory" ? FileByteStream(path: folder) : FileByteStream(path: fifo, offset: 8)
            Issue.record("expected the \(refusal) to be refused")
        } catch {}
        let afterRefusal = errno
        #expect(afterRefusal != EBADF, "a descriptor was closed twice")
    }
}
