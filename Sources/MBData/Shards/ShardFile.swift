import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// A shard file held open for positioned reads (`pread`): the kernel copies a frame from
/// the page cache straight into the caller's buffer.
///
/// Frames are read, not mapped. A mapping saved that copy, but dropping a frame's pages (and
/// a 64 KiB window) after decoding it left pages mapped on this kernel, whose page cache holds
/// large folios: the resident set grew along the file past the loader's bound. Dropping whole
/// 2 MiB ranges fixed that but cost TLB shootdowns; reading was as fast or faster
/// (Benchmarks/README.md, loader).
package final class ShardFile: Sendable {
    package let path: String
    /// `path` made absolute against the working directory at open: what another process is told.
    package let absolutePath: String
    private let descriptor: Int32
    package let size: Int
    /// The open file's `st_dev` and `st_ino`: which file this is, whatever its path names later.
    package let device: UInt64
    package let inode: UInt64

    package init(path: String) throws {
        self.path = path
        absolutePath = URL(fileURLWithPath: path).standardizedFileURL.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MBDataError(.unreadableSource, "cannot open shard: \(String(cString: strerror(errno)))", source: path) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else {
            close(fd)
            throw MBDataError(.unreadableSource, "cannot stat shard", source: path)
        }
        descriptor = fd
        size = Int(info.st_size)
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    deinit {
        close(descriptor)
    }

    /// The bytes of `range`.
    package func copy(_ range: Range<Int>) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: range.count) { buffer, count in
            try read(range, into: UnsafeMutableRawBufferPointer(buffer))
            count = range.count
        }
    }

    /// Reads `range` into the first `range.count` bytes of `buffer`.
    package func read(_ range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard range.lowerBound >= 0, range.upperBound <= size, buffer.count >= range.count else {
            throw MBDataError(.corruptData, "frame \(range) lies outside the \(size)-byte shard", source: path)
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
}
