import CZlib
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A forward-only source of bytes: a file, a region of a file, stdin, or an inflated zip entry.
protocol ByteStream {
    /// Reads up to `buffer.count` bytes; returns 0 only at the end.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteStream {
    /// Fills `buffer` completely, or returns how many bytes came before the end.
    mutating func readFully(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { break }
            filled += n
        }
        return filled
    }

    /// Reads exactly `count` bytes or fails with `truncated`.
    mutating func readExactly(_ count: Int, source: String, what: String) throws -> [UInt8] {
        var got = 0
        let bytes = try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            got = try readFully(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = got
        }
        guard got == count else {
            throw MBDataError(
                .malformedRecord, "truncated \(what): expected \(count) bytes, found \(got)", source: source)
        }
        return bytes
    }
}

/// A file descriptor read with `read(2)`, optionally limited to a byte range; unless
/// `hashing` is off, every byte read goes into the source's content hash.
final class FileByteStream: ByteStream {
    let path: String
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var remaining: Int?
    private(set) var bytesRead = 0
    private(set) var hash = XXH64()
    private let hashing: Bool

    /// Opens `path`, or stdin for `-`.
    init(path: String, offset: Int = 0, length: Int? = nil, hashing: Bool = true) throws {
        self.path = path
        self.hashing = hashing
        remaining = length
        if path == "-" {
            fd = 0
            ownsDescriptor = false
        } else {
            // Every stored property is set only once the descriptor is good: had the
            // initializer thrown after that, `deinit` would run and close it a second time.
            fd = try Self.openRegularFile(path, offset: offset)
            ownsDescriptor = true
        }
    }

    /// A descriptor of `path` positioned at `offset`, or an error with no descriptor left open.
    private static func openRegularFile(_ path: String, offset: Int) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw MBDataError(.unreadableSource, "cannot open: \(String(cString: strerror(errno)))", source: path)
        }
        var info = stat()
        if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw MBDataError(.unreadableSource, "is a directory, expected a file", source: path)
        }
        if offset > 0 && lseek(fd, off_t(offset), SEEK_SET) < 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MBDataError(.unreadableSource, "cannot seek: \(reason)", source: path)
        }
        return fd
    }

    deinit {
        if ownsDescriptor { close(fd) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var wanted = buffer.count
        if let remaining { wanted = min(wanted, remaining) }
        guard wanted > 0 else { return 0 }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, wanted)
            if n < 0 {
                if errno == EINTR { continue }
                throw MBDataError(.unreadableSource, "read failed: \(String(cString: strerror(errno)))", source: path)
            }
            if n > 0 {
                if hashing { hash.update(UnsafeRawBufferPointer(start: buffer.baseAddress, count: n)) }
                bytesRead += n
                if remaining != nil { remaining! -= n }
            }
            return n
        }
    }

    /// The xxh64 of a whole file, as `xxh64:…`.
    static func digest(of path: String) throws -> String {
        let stream = try FileByteStream(path: path)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while try buffer.withUnsafeMutableBytes({ try stream.read(into: $0) }) > 0 {}
        return stream.hash.hexDigest
    }

    /// The size of a regular file, or nil for pipes and stdin.
    static func size(of path: String) -> Int? {
        guard path != "-" else { return nil }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }
}

/// Raw-deflate decompression (zip method 8) of another stream.
final class InflateByteStream: ByteStream {
    private var inner: any ByteStream
    private let source: String
    private var stream = z_stream()
    private var input = [UInt8](repeating: 0, count: 1 << 16)
    private var inputStart = 0
    private var inputEnd = 0
    private var finished = false

    init(_ inner: any ByteStream, source: String) throws {
        self.inner = inner
        self.source = source
        let status = inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            throw MBDataError(.storage, "zlib inflateInit failed (\(status))", source: source)
        }
    }

    deinit { inflateEnd(&stream) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished, buffer.count > 0 else { return 0 }
        while true {
            if inputStart == inputEnd {
                inputEnd = try input.withUnsafeMutableBytes { try inner.read(into: $0) }
                inputStart = 0
            }
            let available = inputEnd - inputStart
            let (status, produced, consumed) = input.withUnsafeMutableBytes { inBytes -> (Int32, Int, Int) in
                stream.next_in = inBytes.baseAddress!.assumingMemoryBound(to: Bytef.self) + inputStart
                stream.avail_in = uInt(available)
                stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                let outCount = min(buffer.count, Int(UInt32.max))
                stream.avail_out = uInt(outCount)
                let status = inflate(&stream, Z_NO_FLUSH)
                return (status, outCount - Int(stream.avail_out), available - Int(stream.avail_in))
            }
            inputStart += consumed
            if status == Z_STREAM_END {
                finished = true
                return produced
            }
            guard status == Z_OK || status == Z_BUF_ERROR else {
                throw MBDataError(.malformedRecord, "corrupt deflate data (zlib error \(status))", source: source)
            }
            if produced > 0 { return produced }
            if available == 0 {
                throw MBDataError(.malformedRecord, "truncated deflate data", source: source)
            }
        }
    }
}

/// Passes another stream through while it counts the bytes and computes their CRC-32 (zlib's);
/// at the end of the inner stream both must equal what the zip directory declared. A member
/// that yields more bytes than declared is refused as soon as it does.
final class CRC32CheckingStream: ByteStream {
    private var inner: any ByteStream
    private let expectedCRC: UInt32
    private let expectedSize: Int
    private let source: String
    private var crc: uLong = crc32(0, nil, 0)
    private(set) var count = 0
    private(set) var isVerified = false

    init(_ inner: any ByteStream, expectedCRC: UInt32, expectedSize: Int, source: String) {
        self.inner = inner
        self.expectedCRC = expectedCRC
        self.expectedSize = expectedSize
        self.source = source
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        if n == 0 {
            try verify()
            return 0
        }
        count += n
        guard count <= expectedSize else {
            throw MBDataError(
                .malformedRecord, "member holds more than the \(expectedSize) bytes its zip directory entry declares", source: source)
        }
        crc = crc32(crc, buffer.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(n))
        return n
    }

    /// Reads what is left (without keeping it) so that the checks run.
    func drain() throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while try scratch.withUnsafeMutableBytes({ try read(into: $0) }) > 0 {}
    }

    private func verify() throws {
        guard !isVerified else { return }
        guard count == expectedSize else {
            throw MBDataError(
                .malformedRecord, "truncated member: its zip directory entry declares \(expectedSize) bytes, it holds \(count)",
                source: source)
        }
        guard UInt32(truncatingIfNeeded: crc) == expectedCRC else {
            throw MBDataError(
                .malformedRecord,
                "bad CRC-32: the member's bytes give \(Self.hex(UInt32(truncatingIfNeeded: crc))), its zip directory entry declares \(Self.hex(expectedCRC)); the archive is corrupt",
                source: source)
        }
        isVerified = true
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
