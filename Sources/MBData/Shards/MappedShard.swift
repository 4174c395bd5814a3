#if canImport(Glibc)
    import Glibc
#endif

/// A shard file mapped read-only, so a frame is decoded straight from the page cache with
/// no read copy; after each frame its pages are dropped from this process's resident set
/// (`MADV_DONTNEED` on a file mapping keeps them in the page cache), so memory stays flat
/// while a whole shard set streams through.
///
/// `copy(_:)` reads a range with `pread` instead: the kernel copies from the page cache
/// straight into the result, with no page faults on the mapping (serving frames as stored).
final class MappedShard: @unchecked Sendable {
    let path: String
    private let base: UnsafeMutableRawPointer
    private let descriptor: Int32
    let size: Int

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MBDataError(.unreadableSource, "cannot open shard: \(String(cString: strerror(errno)))", source: path) }
        descriptor = fd
        var keep = false
        defer { if !keep { close(fd) } }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else {
            throw MBDataError(.unreadableSource, "cannot stat shard", source: path)
        }
        size = Int(info.st_size)
        guard let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw MBDataError(.unreadableSource, "cannot map shard: \(String(cString: strerror(errno)))", source: path)
        }
        base = mapped
        keep = true
    }

    deinit {
        munmap(base, size)
        close(descriptor)
    }

    /// The bytes of `range`, read with `pread`.
    func copy(_ range: Range<Int>) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: range.count) { buffer, count in
            try read(range, into: UnsafeMutableRawBufferPointer(buffer))
            count = range.count
        }
    }

    /// Reads `range` into the first `range.count` bytes of `buffer` with `pread`.
    func read(_ range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard range.lowerBound >= 0, range.upperBound <= size, buffer.count >= range.count else {
            throw MBDataError(.malformedRecord, "frame \(range) lies outside the \(size)-byte shard", source: path)
        }
        var done = 0
        while done < range.count {
            let n = pread(descriptor, buffer.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw MBDataError(
                    .unreadableSource, "cannot read shard: \(n == 0 ? "unexpected end of file" : String(cString: strerror(errno)))", source: path)
            }
            done += n
        }
    }

    /// Runs `body` over the bytes of `range`, then releases their pages from the resident set.
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard range.lowerBound >= 0, range.upperBound <= size else {
            throw MBDataError(.malformedRecord, "frame \(range) lies outside the \(size)-byte shard", source: path)
        }
        defer {
            // The frame's pages and a fault-around window (64 KiB) on each side: the kernel maps
            // neighbouring pages along with a faulting one, and a page dropped while another
            // thread reads it is simply faulted in again from the page cache. Only this range:
            // dropping the whole prefix of the file each time walked ever longer page tables.
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let window = 64 << 10
            let start = max(0, range.lowerBound - window) / page * page
            let end = min(size, (range.upperBound + window + page - 1) / page * page)
            madvise(base + start, end - start, MADV_DONTNEED)
        }
        return try body(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }
}
