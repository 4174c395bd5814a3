import Foundation

/// The parsers of outside bytes, each as one call over bytes in memory, for the fuzz targets
/// and their corpus replay (Tests/Fuzz). Each throws `MBDataError` on bad input and must
/// never trap.
package enum UntrustedInput {
    /// The header at the start of an `.npy` file.
    package static func npyHeader(_ bytes: [UInt8]) throws {
        var stream = MemoryByteStream(bytes)
        let header = try NPYHeader.read(from: &stream, source: "input")
        _ = (header.shapeDescription, header.rowCount)
    }

    /// One JSON Lines record against `schema`.
    package static func jsonRecord(_ bytes: [UInt8], schema: Schema) throws {
        _ = try bytes.withUnsafeBytes { try JSONRecordParser(schema: schema).parse($0) }
    }

    /// One LZ4 frame: its declared size, then decoding (with a limit) with and without liblz4's
    /// content checksum.
    package static func lz4Frame(_ frame: [UInt8], limit: Int) throws {
        _ = try? frame.withUnsafeBytes { try LZ4Frame.contentSize(of: $0) }
        _ = try? LZ4Frame.decompress(frame, limit: limit, verifyingContentChecksum: false)
        _ = try LZ4Frame.decompress(frame, limit: limit)
    }

    /// A collated batch: the safetensors header and every int64 tensor it names.
    package static func safetensors(_ buffer: [UInt8]) throws {
        let reader = try SafetensorsReader(buffer)
        for name in reader.tensors.keys.sorted() { _ = try? reader.int64Values(name, in: buffer) }
    }

    /// A shard footer checked against the end of the frames before it.
    package static func shardFooter(_ footer: [UInt8], framesEnd: UInt64) throws {
        _ = try ShardFormat.decodeFooter(footer, framesEnd: framesEnd, source: "input")
    }
}

/// Bytes in memory as an ingest source stream.
struct MemoryByteStream: ByteStream {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[position..<(position + n)])) }
        position += n
        return n
    }
}
