/// The central directory of a zip archive (as `np.savez` writes, with ZIP64 where needed):
/// where each member's data starts, how long it is and how it is compressed.
struct ZipDirectory {
    struct Entry {
        var name: String
        var method: UInt16
        var compressedSize: Int
        var uncompressedSize: Int
        var localHeaderOffset: Int
    }

    var entries: [Entry]
    let path: String

    init(path: String) throws {
        self.path = path
        guard let size = FileByteStream.size(of: path) else {
            throw MBDataError(.unreadableSource, "cannot read: not a regular file", source: path)
        }
        let tailLength = min(size, 65_557)
        var tailStream = try FileByteStream(path: path, offset: size - tailLength)
        let tail = try tailStream.readExactly(tailLength, source: path, what: "zip end record")
        guard let eocd = stride(from: tail.count - 22, through: 0, by: -1).first(where: { Self.u32(tail, $0) == 0x0605_4b50 }) else {
            throw MBDataError(.malformedRecord, "not a zip archive (no end-of-central-directory record); an NPZ is a zip file", source: path)
        }
        var count = Int(Self.u16(tail, eocd + 10))
        var directorySize = Int(Self.u32(tail, eocd + 12))
        var directoryOffset = Int(Self.u32(tail, eocd + 16))
        let locator = eocd - 20
        if locator >= 0 && Self.u32(tail, locator) == 0x0706_4b50 {
            let zip64Offset = Int(Self.u64(tail, locator + 8))
            var stream = try FileByteStream(path: path, offset: zip64Offset)
            let record = try stream.readExactly(56, source: path, what: "zip64 end record")
            guard Self.u32(record, 0) == 0x0606_4b50 else {
                throw MBDataError(.malformedRecord, "corrupt zip64 end record", source: path)
            }
            count = Int(Self.u64(record, 32))
            directorySize = Int(Self.u64(record, 40))
            directoryOffset = Int(Self.u64(record, 48))
        }
        guard directoryOffset + directorySize <= size else {
            throw MBDataError(.malformedRecord, "truncated zip archive: central directory lies beyond the end", source: path)
        }
        var stream = try FileByteStream(path: path, offset: directoryOffset)
        let directory = try stream.readExactly(directorySize, source: path, what: "zip central directory")
        var entries: [Entry] = []
        var p = 0
        for _ in 0..<count {
            guard p + 46 <= directory.count, Self.u32(directory, p) == 0x0201_4b50 else {
                throw MBDataError(.malformedRecord, "corrupt zip central directory", source: path)
            }
            let method = Self.u16(directory, p + 10)
            var compressed = Int(Self.u32(directory, p + 20))
            var uncompressed = Int(Self.u32(directory, p + 24))
            let nameLength = Int(Self.u16(directory, p + 28))
            let extraLength = Int(Self.u16(directory, p + 30))
            let commentLength = Int(Self.u16(directory, p + 32))
            var offset = Int(Self.u32(directory, p + 42))
            guard p + 46 + nameLength + extraLength <= directory.count else {
                throw MBDataError(.malformedRecord, "corrupt zip central directory", source: path)
            }
            let name = String(decoding: directory[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let tag = Self.u16(directory, e)
                let length = Int(Self.u16(directory, e + 2))
                if tag == 0x0001 {
                    var q = e + 4
                    if uncompressed == 0xFFFF_FFFF { uncompressed = Int(Self.u64(directory, q)); q += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = Int(Self.u64(directory, q)); q += 8 }
                    if offset == 0xFFFF_FFFF { offset = Int(Self.u64(directory, q)) }
                }
                e += 4 + length
            }
            entries.append(Entry(name: name, method: method, compressedSize: compressed, uncompressedSize: uncompressed, localHeaderOffset: offset))
            p += 46 + nameLength + extraLength + commentLength
        }
        self.entries = entries
    }

    /// A stream of the member's uncompressed bytes.
    func open(_ entry: Entry) throws -> any ByteStream {
        var local = try FileByteStream(path: path, offset: entry.localHeaderOffset)
        let header = try local.readExactly(30, source: path, what: "zip local header of \(entry.name)")
        guard Self.u32(header, 0) == 0x0403_4b50 else {
            throw MBDataError(.malformedRecord, "corrupt zip local header for \(entry.name)", source: path)
        }
        let dataOffset = entry.localHeaderOffset + 30 + Int(Self.u16(header, 26)) + Int(Self.u16(header, 28))
        let raw = try FileByteStream(path: path, offset: dataOffset, length: entry.compressedSize)
        switch entry.method {
        case 0: return raw
        case 8: return try InflateByteStream(raw, source: "\(path):\(entry.name)")
        default:
            throw MBDataError(
                .malformedRecord, "member \(entry.name) uses zip compression method \(entry.method); expected stored (0) or deflate (8)",
                source: path)
        }
    }

    private static func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    private static func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(u16(b, i)) | UInt32(u16(b, i + 2)) << 16 }
    private static func u64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(u32(b, i)) | UInt64(u32(b, i + 4)) << 32 }
}
