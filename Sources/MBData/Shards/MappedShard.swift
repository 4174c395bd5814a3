#if canImport(Glibc)
    import Glibc
#endif

/// A shard file mapped read-only, so a frame is decoded straight from the page cache with
/// no read copy; after each frame its pages are dropped from this process's resident set
/// (`MADV_DONTNEED` on a file mapping keeps them in the page cache), so memory stays flat
/// while a whole shard set streams through.
final class MappedShard: @unchecked Sendable {
    let path: String
    private let base: UnsafeMutableRawPointer
    let size: Int

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MBDataError(.unreadableSource, "cannot open shard: \(String(cString: strerror(errno)))", source: path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else {
            throw MBDataError(.unreadableSource, "cannot stat shard", source: path)
        }
        size = Int(info.st_size)
        guard let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw MBDataError(.unreadableSource, "cannot map shard: \(String(cString: strerror(errno)))", source: path)
        }
        base = mapped
    }

    deinit { munmap(base, size) }

    /// Runs `body` over the bytes of `range`, then releases their pages from the resident set.
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard range.lowerBound >= 0, range.upperBound <= size else {
            throw MBDataError(.malformedRecord, "frame \(range) lies outside the \(size)-byte shard", source: path)
        }
        defer {
            // Everything up to this frame's end, rounded out to pages: fault-around and large
            // folios map more than the frame itself, and a file page dropped while another
            // thread reads it is simply faulted in again from the page cache.
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let end = min(size, (range.upperBound + page - 1) / page * page)
            madvise(base, end, MADV_DONTNEED)
        }
        return try body(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }
}
