/// JSON Lines: one object per line holding every field of the schema; blank lines are skipped.
final class JSONLSource: SampleSource {
    let name: String
    let formatName = SourceFormat.jsonl.rawValue
    let expectedRecords: Int? = nil
    let expectedBytes: Int?
    private let stream: FileByteStream
    private var lines: LineReader
    private let parser: JSONRecordParser

    init(path: String, schema: Schema, maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes) throws {
        name = path
        stream = try FileByteStream(path: path)
        expectedBytes = FileByteStream.size(of: path)
        lines = LineReader(stream, source: path, maxLineLength: maxRecordBytes)
        parser = JSONRecordParser(schema: schema, maxRecordBytes: maxRecordBytes)
    }

    var bytesRead: Int { stream.bytesRead }
    var contentHash: String? { stream.hash.hexDigest }

    func next() throws -> SourceItem? {
        while true {
            let parsed: Result<[SampleValue], MBDataError>?? = try lines.next { line in
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
                do {
                    return .success(try parser.parse(line))
                } catch let error as MBDataError {
                    return .failure(error)
                }
            }
            switch parsed {
            case .none: return nil
            case .some(.none): continue
            case .some(.some(.success(let values))): return .sample(values)
            case .some(.some(.failure(let error))):
                return .invalid(error.located(source: name, location: "line \(lines.lineNumber)"))
            }
        }
    }
}
