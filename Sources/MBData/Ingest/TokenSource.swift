/// A token binary: a little-endian stream of uint16 or uint32 token ids, cut into
/// consecutive windows of `sequenceLength` tokens. Fills the schema's integer tensor field
/// with the window and, if present, a scalar integer field with the window's first token
/// offset (a natural key). A tail shorter than a window is dropped and reported.
final class TokenSource: SampleSource {
    let name: String
    let format = SourceFormat.tokens
    let expectedRecords: Int?
    let expectedBytes: Int?
    private let stream: FileByteStream
    private let sequenceLength: Int
    private let tokenByteWidth: Int
    private let tokensIndex: Int
    private let offsetIndex: Int?
    private let tokensField: Field
    private let fieldCount: Int
    private var window: [UInt8]
    private var windowNumber = 0
    private var tailTokens = 0

    init(path: String, schema: Schema, sequenceLength: Int?, tokenByteWidth: Int) throws {
        name = path
        guard let sequenceLength, sequenceLength > 0 else {
            throw MBDataError(.invalidArgument, "token binaries need --seq-len N (tokens per sample)", source: path)
        }
        guard tokenByteWidth == 2 || tokenByteWidth == 4 else {
            throw MBDataError(.invalidArgument, "--token-dtype must be uint16 or uint32", source: path)
        }
        let fields = schema.fields
        guard let tokensIndex = fields.firstIndex(where: { $0.dtype.isInteger && $0.shape.count == 1 }) else {
            throw MBDataError(
                .schemaMismatch, "a token binary fills a 1-d integer tensor field (e.g. int32 [null]); the schema has none", source: path)
        }
        let tokensField = fields[tokensIndex]
        if let fixed = tokensField.shape[0], fixed != sequenceLength {
            throw MBDataError(
                .schemaMismatch, "field has shape [\(fixed)] but --seq-len is \(sequenceLength)", source: path, field: tokensField.name)
        }
        let offsetIndex = fields.firstIndex { $0.isScalar && $0.dtype.isInteger }
        if let extra = fields.indices.first(where: { $0 != tokensIndex && $0 != offsetIndex }) {
            throw MBDataError(
                .schemaMismatch, "a token binary fills only the token window and an optional integer offset; this field would have no value",
                source: path, field: fields[extra].name)
        }
        self.sequenceLength = sequenceLength
        self.tokenByteWidth = tokenByteWidth
        self.tokensIndex = tokensIndex
        self.offsetIndex = offsetIndex
        self.tokensField = tokensField
        fieldCount = fields.count
        stream = try FileByteStream(path: path)
        let size = FileByteStream.size(of: path)
        if let size, size % tokenByteWidth != 0 {
            throw MBDataError(
                .malformedRecord,
                "truncated: \(size) bytes is not a whole number of \(tokenByteWidth)-byte tokens (--token-dtype uint\(tokenByteWidth * 8))",
                source: path)
        }
        expectedBytes = size
        expectedRecords = size.map { $0 / tokenByteWidth / sequenceLength }
        window = [UInt8](repeating: 0, count: sequenceLength * tokenByteWidth)
    }

    var bytesRead: Int { stream.bytesRead }
    var contentHash: String { stream.hash.hexDigest }
    var notes: [String] {
        tailTokens > 0 ? ["dropped a tail of \(tailTokens) tokens shorter than --seq-len \(sequenceLength)"] : []
    }

    func next() throws -> SourceItem? {
        var mutableStream: any ByteStream = stream
        let got = try window.withUnsafeMutableBytes { try mutableStream.readFully(into: $0) }
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
