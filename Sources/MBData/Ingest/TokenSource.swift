/// A token binary: a little-endian stream of uint16 or uint32 token ids, cut into
/// consecutive windows of `sequenceLength` tokens. Fills the schema's integer tensor field
/// with the window and, if present, a scalar integer field with the window's first token
/// offset (a natural key). A tail shorter than a window is dropped and reported.
final class TokenSource: SampleSource {
    let name: String
    let formatName = SourceFormat.tokens.rawValue
    let expectedRecords: Int?
    let expectedBytes: Int?
    private var stream: any ByteStream
    /// The file being read, for progress and the content hash; nil for bytes in memory.
    private let file: FileByteStream?
    private let sequenceLength: Int
    private let tokenByteWidth: Int
    private let tokensIndex: Int
    private let offsetIndex: Int?
    private let tokensField: Field
    private let fieldCount: Int
    private var window: [UInt8]
    private var windowNumber = 0
    private var tailTokens = 0

    convenience init(path: String, schema: Schema, sequenceLength: Int?, tokenByteWidth: Int, maxRecordBytes: Int) throws {
        let file = try FileByteStream(path: path)
        try self.init(
            stream: file, file: file, size: FileByteStream.size(of: path), name: path, schema: schema, sequenceLength: sequenceLength,
            tokenByteWidth: tokenByteWidth, maxRecordBytes: maxRecordBytes)
    }

    /// Cuts token bytes held in memory into windows (the token fuzz target and tests): the
    /// number of windows, or the error of the first bad one.
    package static func windowCount(
        in bytes: [UInt8], schema: Schema, sequenceLength: Int?, tokenByteWidth: Int,
        maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes
    ) throws -> Int {
        let source = try TokenSource(
            stream: MemoryByteStream(bytes), file: nil, size: bytes.count, name: "<memory>.bin", schema: schema,
            sequenceLength: sequenceLength, tokenByteWidth: tokenByteWidth, maxRecordBytes: maxRecordBytes)
        var count = 0
        while let item = try source.next() {
            if case .invalid(let error) = item { throw error }
            count += 1
        }
        return count
    }

    private init(
        stream: any ByteStream, file: FileByteStream?, size: Int?, name path: String, schema: Schema, sequenceLength: Int?,
        tokenByteWidth: Int, maxRecordBytes: Int
    ) throws {
        name = path
        guard let sequenceLength else {
            throw MBDataError(
                .invalidArgument, "token binaries need a sequence length (tokens per sample)", source: path, parameter: "SourceSpec.sequenceLength")
        }
        try SourceSpec.checkSequenceLength(sequenceLength)
        guard tokenByteWidth == 2 || tokenByteWidth == 4 else {
            throw MBDataError(
                .invalidArgument, "tokens must be uint16 or uint32 (2 or 4 bytes per token)", source: path, parameter: "SourceSpec.tokenByteWidth")
        }
        let fields = schema.fields
        guard let tokensIndex = fields.firstIndex(where: { $0.dtype.isInteger && $0.shape.count == 1 }) else {
            throw MBDataError(
                .schemaMismatch, "a token binary fills a 1-d integer tensor field (e.g. int32 [null]); the schema has none", source: path)
        }
        let tokensField = fields[tokensIndex]
        if let fixed = tokensField.shape[0], fixed != sequenceLength {
            throw MBDataError(
                .schemaMismatch, "field has shape [\(fixed)] but the sequence length is \(sequenceLength)", source: path,
                field: tokensField.name, parameter: "SourceSpec.sequenceLength")
        }
        let offsetIndex = fields.firstIndex { $0.isScalar && $0.dtype.isInteger }
        if let extra = fields.indices.first(where: { $0 != tokensIndex && $0 != offsetIndex }) {
            throw MBDataError(
                .schemaMismatch, "a token binary fills only the token window and an optional integer offset; this field would have no value",
                source: path, field: fields[extra].name)
        }
        // Both products stay below 2^24 × 8: no overflow.
        let recordBytes = sequenceLength * max(tokenByteWidth, tokensField.dtype.itemSize ?? 8)
        guard recordBytes <= maxRecordBytes else {
            throw RecordLimits.exceeded("a window of \(sequenceLength) tokens (\(recordBytes) bytes)", limit: maxRecordBytes)
                .located(source: path, field: tokensField.name)
        }
        self.sequenceLength = sequenceLength
        self.tokenByteWidth = tokenByteWidth
        self.tokensIndex = tokensIndex
        self.offsetIndex = offsetIndex
        self.tokensField = tokensField
        fieldCount = fields.count
        self.stream = stream
        self.file = file
        if let size, size % tokenByteWidth != 0 {
            throw MBDataError(
                .malformedRecord,
                "truncated: \(size) bytes is not a whole number of \(tokenByteWidth)-byte tokens (uint\(tokenByteWidth * 8))",
                source: path, parameter: "SourceSpec.tokenByteWidth")
        }
        expectedBytes = size
        expectedRecords = size.map { $0 / tokenByteWidth / sequenceLength }
        window = [UInt8](repeating: 0, count: sequenceLength * tokenByteWidth)
    }

    var bytesRead: Int { file?.bytesRead ?? 0 }
    var contentHash: String? { file?.hash.hexDigest ?? XXH64().hexDigest }
    var notes: [String] {
        tailTokens > 0 ? ["dropped a tail of \(tailTokens) tokens shorter than the sequence length \(sequenceLength)"] : []
    }

    func next() throws -> SourceItem? {
        let got = try window.withUnsafeMutableBytes { try stream.readFully(into: $0) }
        guard got == window.count else {
            if got % tokenByteWidth != 0 {
                throw MBDataError(
                    .malformedRecord, "truncated: the stream ends inside a \(tokenByteWidth)-byte token", source: name)
            }
            tailTokens = got / tokenByteWidth
            return nil
        }
        let location = "window \(windowNumber) (tokens \(windowNumber * sequenceLength)..<\((windowNumber + 1) * sequenceLength))"
        defer { windowNumber += 1 }
        var out: [UInt8] = []
        out.reserveCapacity(sequenceLength * (tokensField.dtype.itemSize ?? 4))
        do {
            try window.withUnsafeBytes { raw in
                for i in 0..<sequenceLength {
                    let token: Int64 =
                        tokenByteWidth == 2
                        ? Int64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                        : Int64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                    try ElementEncoding.append(.integer(token), as: tokensField.dtype, to: &out)
                }
            }
        } catch let error as MBDataError {
            return .invalid(error.located(source: name, location: location, field: tokensField.name))
        }
        var values = [SampleValue](repeating: .integer(0), count: fieldCount)
        values[tokensIndex] = .blob(out)
        if let offsetIndex { values[offsetIndex] = .integer(Int64(windowNumber * sequenceLength)) }
        return .sample(values)
    }
}
