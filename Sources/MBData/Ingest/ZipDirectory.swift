/// Where a zip archive's bytes come from: a file, or memory (fuzzing and tests).
protocol ZipStorage {
    /// The archive's size in bytes.
    var size: Int { get }
    /// The archive's name, for messages.
    var name: String { get }
    /// A stream of `length` bytes from `offset`; the caller has checked the range.
    func stream(offset: Int, length: Int) throws -> any ByteStream
}

struct ZipFileStorage: ZipStorage {
    let name: String
    let size: Int

    init(path: String) throws {
        guard let size = FileByteStream.size(of: path) else {
            throw MBDataError(.unreadableSource, "cannot read: not a regular file", source: path)
        }
        name = path
        self.size = size
    }

    func stream(offset: Int, length: Int) throws -> any ByteStream {
        try FileByteStream(path: name, offset: offset, length: length, hashing: false)
    }
}

struct ZipMemoryStorage: ZipStorage {
    let name: String
    let bytes: [UInt8]
    var size: Int { bytes.count }

    func stream(offset: Int, length: Int) throws -> any ByteStream {
        guard CheckedSize.range(offset: offset, length: length, within: bytes.count) else {
            throw MBDataError(.malformedRecord, "range of \(length) bytes at \(offset) lies outside the archive", source: name)
        }
        return MemoryByteStream(Array(bytes[offset..<(offset + length)]))
    }
}

/// The central directory of a zip archive (as `np.savez` writes, with ZIP64 where needed):
/// where each member's data starts, how long it is, how it is compressed and its CRC-32.
///
/// Every size, count and offset is untrusted: each is checked against what contains it
/// (the directory, the archive) before it is used, and a member's bytes are checked
/// against its declared size and CRC-32 as they stream out.
///
/// The reader is hand-written rather than ZIPFoundation's: members stream straight from
/// the file through zlib into the NPY reader with bounded memory (ZIPFoundation hands
/// out entries through push-style closures), and it adds no dependency.
struct ZipDirectory {
    struct Entry {
        var name: String
        var method: UInt16
        var crc32: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        var localHeaderOffset: Int
    }

    /// A central directory larger than this is refused as implausible (over a million members).
    static let maxDirectorySize = 64 << 20

    var entries: [Entry]
    let storage: any ZipStorage
    var path: String { storage.name }

    init(path: String) throws {
        try self.init(storage: ZipFileStorage(path: path))
    }

    init(storage: any ZipStorage) throws {
        self.storage = storage
        let path = storage.name
        let size = storage.size
        func corrupt(_ message: String) -> MBDataError {
            MBDataError(.malformedRecord, "corrupt zip archive: \(message)", source: path)
        }
        let tailLength = min(size, 65_557)
        var tailStream = try storage.stream(offset: size - tailLength, length: tailLength)
        let tail = try tailStream.readExactly(tailLength, source: path, what: "zip end record")
        guard tail.count >= 22, let eocd = stride(from: tail.count - 22, through: 0, by: -1).first(where: { Self.u32(tail, $0) == 0x0605_4b50 }) else {
            throw MBDataError(.malformedRecord, "not a zip archive (no end-of-central-directory record); an NPZ is a zip file", source: path)
        }
        var count = Int(Self.u16(tail, eocd + 10))
        var directorySize = Int(Self.u32(tail, eocd + 12))
        var directoryOffset = Int(Self.u32(tail, eocd + 16))
        let locator = eocd - 20
        if locator >= 0 && Self.u32(tail, locator) == 0x0706_4b50 {
            guard let zip64Offset = CheckedSize.int(Self.u64(tail, locator + 8)), CheckedSize.range(offset: zip64Offset, length: 56, within: size) else {
                throw corrupt("the zip64 end record's offset \(Self.u64(tail, locator + 8)) lies outside the \(size)-byte archive")
            }
            var stream = try storage.stream(offset: zip64Offset, length: 56)
            let record = try stream.readExactly(56, source: path, what: "zip64 end record")
            guard Self.u32(record, 0) == 0x0606_4b50 else { throw corrupt("no zip64 end record where the locator points") }
            guard let count64 = CheckedSize.int(Self.u64(record, 32)), let size64 = CheckedSize.int(Self.u64(record, 40)),
                let offset64 = CheckedSize.int(Self.u64(record, 48))
            else {
                throw corrupt(
                    "zip64 end record declares \(Self.u64(record, 32)) members, a \(Self.u64(record, 40))-byte directory at offset \(Self.u64(record, 48)) (values ≥ 2^63)")
            }
            (count, directorySize, directoryOffset) = (count64, size64, offset64)
        }
        guard CheckedSize.range(offset: directoryOffset, length: directorySize, within: size) else {
            throw MBDataError(
                .malformedRecord,
                "truncated zip archive: the central directory (\(directorySize) bytes at offset \(directoryOffset)) lies beyond the end of the \(size)-byte archive",
                source: path)
        }
        guard directorySize <= Self.maxDirectorySize else {
            throw corrupt("a central directory of \(directorySize) bytes is implausible (limit \(Self.maxDirectorySize))")
        }
        // Every directory entry takes at least 46 bytes.
        guard count <= directorySize / 46 else {
            throw corrupt("\(count) members cannot fit in a \(directorySize)-byte central directory")
        }
        var stream = try storage.stream(offset: directoryOffset, length: directorySize)
        let directory = try stream.readExactly(directorySize, source: path, what: "zip central directory")
        var entries: [Entry] = []
        var names = Set<String>()
        var p = 0
        for index in 0..<count {
            guard p + 46 <= directory.count, Self.u32(directory, p) == 0x0201_4b50 else {
                throw corrupt("central directory entry \(index) of \(count) is missing or has no signature")
            }
            let flags = Self.u16(directory, p + 8)
            let method = Self.u16(directory, p + 10)
            let crc = Self.u32(directory, p + 16)
            var compressed = Int(Self.u32(directory, p + 20))
            var uncompressed = Int(Self.u32(directory, p + 24))
            let nameLength = Int(Self.u16(directory, p + 28))
            let extraLength = Int(Self.u16(directory, p + 30))
            let commentLength = Int(Self.u16(directory, p + 32))
            var offset = Int(Self.u32(directory, p + 42))
            let nameEnd = p + 46 + nameLength
            let extraEnd = nameEnd + extraLength
            let entryEnd = extraEnd + commentLength
            guard entryEnd <= directory.count else {
                throw corrupt("central directory entry \(index) runs past the end of the directory")
            }
            let name = String(decoding: directory[(p + 46)..<nameEnd], as: UTF8.self)
            func bad(_ message: String) -> MBDataError {
                MBDataError(.malformedRecord, "corrupt zip archive: member \(name): \(message)", source: path)
            }
            guard flags & 1 == 0 else { throw bad("encrypted members are not supported") }
            var e = nameEnd
            while e + 4 <= extraEnd {
                let tag = Self.u16(directory, e)
                let fieldEnd = e + 4 + Int(Self.u16(directory, e + 2))
                guard fieldEnd <= extraEnd else { throw bad("extra field 0x\(String(tag, radix: 16)) runs past its entry") }
                if tag == 0x0001 {
                    var q = e + 4
                    func next64(_ what: String) throws -> Int {
                        guard q + 8 <= fieldEnd else { throw bad("zip64 extra field too short to hold the \(what)") }
                        let raw = Self.u64(directory, q)
                        q += 8
                        guard let value = CheckedSize.int(raw) else { throw bad("zip64 \(what) \(raw) is out of range (≥ 2^63)") }
                        return value
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next64("uncompressed size") }
                    if compressed == 0xFFFF_FFFF { compressed = try next64("compressed size") }
                    if offset == 0xFFFF_FFFF { offset = try next64("local header offset") }
                }
                e = fieldEnd
            }
            guard names.insert(name).inserted else {
                throw MBDataError(
                    .malformedRecord, "member \(name) appears twice in the archive; which one is meant is ambiguous", source: path)
            }
            guard CheckedSize.range(offset: offset, length: 30, within: directoryOffset),
                CheckedSize.range(offset: offset, length: compressed, within: directoryOffset)
            else {
                throw bad("its data (\(compressed) bytes at offset \(offset)) lies outside the archive's member area of \(directoryOffset) bytes")
            }
            if method == 0 && compressed != uncompressed {
                throw bad("a stored member declares \(compressed) stored and \(uncompressed) uncompressed bytes")
            }
            entries.append(
                Entry(name: name, method: method, crc32: crc, compressedSize: compressed, uncompressedSize: uncompressed, localHeaderOffset: offset))
            p = entryEnd
        }
        self.entries = entries
    }

    /// A stream of the member's uncompressed bytes, checked against its declared size and
    /// CRC-32 when it reaches the end.
    func open(_ entry: Entry) throws -> CRC32CheckingStream {
        let source = "\(path):\(entry.name)"
        var local = try storage.stream(offset: entry.localHeaderOffset, length: 30)
        let header = try local.readExactly(30, source: path, what: "zip local header of \(entry.name)")
        guard Self.u32(header, 0) == 0x0403_4b50 else {
            throw MBDataError(.malformedRecord, "corrupt zip local header for \(entry.name)", source: path)
        }
        let dataOffset = entry.localHeaderOffset + 30 + Int(Self.u16(header, 26)) + Int(Self.u16(header, 28))
        guard CheckedSize.range(offset: dataOffset, length: entry.compressedSize, within: storage.size) else {
            throw MBDataError(
                .malformedRecord, "corrupt zip archive: member \(entry.name)'s data runs past the end of the archive", source: path)
        }
        let raw = try storage.stream(offset: dataOffset, length: entry.compressedSize)
        let content: any ByteStream
        switch entry.method {
        case 0: content = raw
        case 8: content = try InflateByteStream(raw, source: source)
        default:
            throw MBDataError(
                .malformedRecord, "member \(entry.name) uses zip compression method \(entry.method); expected stored (0) or deflate (8)",
                source: path)
        }
        return CRC32CheckingStream(content, expectedCRC: entry.crc32, expectedSize: entry.uncompressedSize, source: source)
    }

    /// Streams every member once to check its size and CRC-32, keeping none of it, so a
    /// corrupt archive is refused before any sample from it is committed.
    func verifyMembers() throws {
        for entry in entries { try open(entry).drain() }
    }

    /// Parses an archive held in memory and checks every member (the zip fuzz target).
    package static func verify(archive bytes: [UInt8]) throws {
        try ZipDirectory(storage: ZipMemoryStorage(name: "<memory>.npz", bytes: bytes)).verifyMembers()
    }

    private static func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    private static func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(u16(b, i)) | UInt32(u16(b, i + 2)) << 16 }
    private static func u64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(u32(b, i)) | UInt64(u32(b, i + 4)) << 32 }
}
