/// The parsers of source files beyond the NPY header and one JSON record: each reads
/// `bytes` exactly as its format is read from a file, keeps nothing, and ends in a value
/// or a thrown `MBDataError` — never a trap, whatever the bytes.
extension UntrustedInput {
    /// A per-record limit small enough that a fuzzer's inputs reach it.
    package static let fuzzRecordLimit = 1 << 20

    /// An `.npy` file: its header, then every row as the values of `field`.
    package static func npyFile(_ bytes: [UInt8], field: Field) throws {
        let header = try NPYHeader.parse(bytes: bytes, source: "<memory>.npy")
        guard let end = CheckedSize.sum(header.dataOffset, header.dataByteCount), end <= bytes.count else {
            throw MBDataError(.malformedRecord, "truncated: the header declares \(header.dataByteCount) data bytes", source: "<memory>.npy")
        }
        var stream = MemoryByteStream(bytes)
        _ = try stream.readExactly(header.dataOffset, source: "<memory>.npy", what: "NPY header")
        let column = try NPYColumn(header: header, stream: stream, field: field, source: "<memory>.npy", maxRecordBytes: fuzzRecordLimit)
        for row in 0..<header.rowCount {
            if case .failure(let error) = try column.next(row: row) { throw error }
        }
    }

    /// An `.npz` (zip) archive: its central directory, then every member inflated and
    /// checked against its size and CRC-32.
    package static func zipArchive(_ bytes: [UInt8]) throws {
        try ZipDirectory.verify(archive: bytes)
    }

    /// A whole CSV text (header row, then records) against `schema`.
    package static func csvText(_ bytes: [UInt8], schema: Schema) throws -> [[SampleValue]] {
        try CSVSource.samples(in: bytes, schema: schema, maxRecordBytes: fuzzRecordLimit)
    }

    /// A token binary cut into windows for `schema`; returns the window count.
    package static func tokenBinary(_ bytes: [UInt8], schema: Schema, sequenceLength: Int, tokenByteWidth: Int) throws -> Int {
        try TokenSource.windowCount(
            in: bytes, schema: schema, sequenceLength: sequenceLength, tokenByteWidth: tokenByteWidth, maxRecordBytes: fuzzRecordLimit)
    }
}
