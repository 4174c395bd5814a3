/// Samples from NumPy arrays: `FIELD=path.npy` pairs or the members of an `.npz`
/// (member names are field names). Every array has the same leading (sample) dimension.
final class NPYSource: SampleSource {
    let name: String
    let format: SourceFormat
    let expectedRecords: Int?
    let expectedBytes: Int?
    private var columns: [NPYColumn] = []
    private var files: [FileByteStream] = []
    private var row = 0

    /// One `.npy` per field.
    init(pairs: [String], schema: Schema, maxRecordBytes: Int) throws {
        name = pairs.joined(separator: " ")
        format = .npy
        var byField: [Int: NPYColumn] = [:]
        var bytes = 0
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw MBDataError(.invalidArgument, "expected FIELD=path.npy, got \"\(pair)\"")
            }
            let (fieldName, path) = (parts[0], parts[1])
            guard let index = schema.index(of: fieldName) else {
                throw MBDataError(
                    .schemaMismatch, "unknown field; the schema has: \(schema.fields.map(\.name).joined(separator: ", "))",
                    source: path, field: fieldName)
            }
            guard byField[index] == nil else {
                throw MBDataError(.invalidArgument, "field given twice", source: path, field: fieldName)
            }
            var stream = try FileByteStream(path: path)
            let header = try NPYHeader.read(from: &stream, source: path)
            if let size = FileByteStream.size(of: path) {
                try Self.checkData(of: header, fits: size, source: path, field: fieldName)
                bytes += size
            }
            files.append(stream)
            byField[index] = try NPYColumn(
                header: header, stream: stream, field: schema.fields[index], source: path, maxRecordBytes: maxRecordBytes)
        }
        expectedBytes = bytes
        columns = try Self.ordered(byField, schema: schema, source: name)
        expectedRecords = try Self.commonRowCount(columns)
    }

    /// The members of an `.npz` archive, stored or deflated.
    init(npz path: String, schema: Schema, maxRecordBytes: Int) throws {
        name = path
        format = .npz
        let zip = try ZipDirectory(path: path)
        // A corrupt member would otherwise be found only after earlier chunks committed.
        try zip.verifyMembers()
        var byField: [Int: NPYColumn] = [:]
        for entry in zip.entries {
            let member = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
            let source = "\(path):\(entry.name)"
            guard let index = schema.index(of: member) else {
                throw MBDataError(
                    .schemaMismatch,
                    "array \"\(member)\" is not a field; the schema has: \(schema.fields.map(\.name).joined(separator: ", "))",
                    source: source, field: member)
            }
            guard byField[index] == nil else {
                throw MBDataError(.malformedRecord, "a second array for the field (as \(entry.name))", source: path, field: member)
            }
            let content = try zip.open(entry)
            var stream: any ByteStream = content
            let header = try NPYHeader.read(from: &stream, source: source)
            try Self.checkData(of: header, fits: entry.uncompressedSize, source: source, field: member)
            members.append(content)
            byField[index] = try NPYColumn(
                header: header, stream: content, field: schema.fields[index], source: source, maxRecordBytes: maxRecordBytes)
        }
        expectedBytes = FileByteStream.size(of: path)
        columns = try Self.ordered(byField, schema: schema, source: path)
        expectedRecords = try Self.commonRowCount(columns)
        npzHash = try FileByteStream.digest(of: path)
    }

    private var npzHash: String?
    /// The npz members being read; drained at the end so their CRC-32 is checked again.
    private var members: [CRC32CheckingStream] = []

    /// The header's data must fit in what holds it (the file, the member).
    private static func checkData(of header: NPYHeader, fits size: Int, source: String, field: String) throws {
        guard let end = CheckedSize.sum(header.dataOffset, header.dataByteCount), end <= size else {
            throw MBDataError(
                .malformedRecord,
                "truncated: header declares \(header.shapeDescription) \(header.descr) = \(header.dataByteCount) data bytes, the \(size)-byte file holds \(max(0, size - header.dataOffset))",
                source: source, field: field)
        }
    }

    private static func ordered(_ byField: [Int: NPYColumn], schema: Schema, source: String) throws -> [NPYColumn] {
        if let missing = schema.fields.indices.first(where: { byField[$0] == nil }) {
            throw MBDataError(
                .schemaMismatch, "no array for the field (expected \(schema.fields[missing].typeDescription))", source: source,
                field: schema.fields[missing].name)
        }
        return schema.fields.indices.map { byField[$0]! }
    }

    private static func commonRowCount(_ columns: [NPYColumn]) throws -> Int {
        let first = columns[0]
        for column in columns.dropFirst() where column.header.rowCount != first.header.rowCount {
            throw MBDataError(
                .schemaMismatch,
                "arrays disagree on the sample count: \(first.source) has \(first.header.rowCount), \(column.source) has \(column.header.rowCount)",
                source: column.source, field: column.field.name)
        }
        return first.header.rowCount
    }

    var formatName: String { format.rawValue }

    var bytesRead: Int {
        if format == .npz {
            return Int(Double(expectedBytes ?? 0) * Double(row) / Double(max(1, expectedRecords ?? 1)))
        }
        return files.reduce(0) { $0 + $1.bytesRead }
    }

    var contentHash: String? {
        if let npzHash { return npzHash }
        var combined = XXH64()
        for file in files { combined.update(Array(file.hash.hexDigest.utf8)) }
        return combined.hexDigest
    }

    func next() throws -> SourceItem? {
        guard row < expectedRecords! else {
            for member in members { try member.drain() }
            return nil
        }
        defer { row += 1 }
        var values: [SampleValue] = []
        values.reserveCapacity(columns.count)
        var failure: MBDataError?
        for column in columns {
            switch try column.next(row: row) {
            case .success(let value): values.append(value)
            case .failure(let error):
                if failure == nil { failure = error }
                values.append(.integer(0))
            }
        }
        if let failure { return .invalid(failure) }
        return .sample(values)
    }
}
