/// CSV per RFC 4180: a header row of field names (any order, each field once), then one
/// sample per record. Quoted cells may hold commas, doubled quotes and line breaks.
final class CSVSource: SampleSource {
    let name: String
    let formatName = SourceFormat.csv.rawValue
    let expectedRecords: Int? = nil
    let expectedBytes: Int?
    private let stream: FileByteStream
    private var reader: CSVRecordReader

    init(path: String, schema: Schema, maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes) throws {
        name = path
        stream = try FileByteStream(path: path)
        expectedBytes = FileByteStream.size(of: path)
        reader = try CSVRecordReader(stream, source: path, schema: schema, maxRecordBytes: maxRecordBytes)
    }

    var bytesRead: Int { stream.bytesRead }
    var contentHash: String? { stream.hash.hexDigest }

    func next() throws -> SourceItem? { try reader.next() }

    /// Reads a whole CSV text held in memory (the CSV fuzz target and tests): the samples,
    /// or the first bad record's error.
    package static func samples(in bytes: [UInt8], schema: Schema, maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes) throws
        -> [[SampleValue]]
    {
        var reader = try CSVRecordReader(
            MemoryByteStream(bytes), source: "<memory>.csv", schema: schema, maxRecordBytes: maxRecordBytes, initialCapacity: bytes.count + 2)
        var samples: [[SampleValue]] = []
        while let item = try reader.next() {
            switch item {
            case .sample(let values): samples.append(values)
            case .invalid(let error): throw error
            }
        }
        return samples
    }
}

/// The records of a CSV stream after its header row, decoded against the schema.
struct CSVRecordReader {
    let name: String
    private var lines: LineReader
    private let schema: Schema
    private let maxRecordBytes: Int
    /// For each column, the schema field index it fills.
    private var columnFields: [Int] = []

    init(_ stream: any ByteStream, source: String, schema: Schema, maxRecordBytes: Int, initialCapacity: Int = 1 << 20) throws {
        name = source
        self.schema = schema
        self.maxRecordBytes = maxRecordBytes
        lines = LineReader(stream, source: source, maxLineLength: maxRecordBytes, initialCapacity: initialCapacity)
        try readHeader()
    }

    private mutating func readHeader() throws {
        guard let (firstCells, line) = try nextRecord() else {
            throw MBDataError(.emptySource, "empty file: expected a header row of field names", source: name)
        }
        var cells = firstCells
        if let first = cells.first, first.starts(with: [0xEF, 0xBB, 0xBF]) { cells[0] = Array(first.dropFirst(3)) }
        var seen = Set<Int>()
        for cell in cells {
            let header = String(decoding: cell, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard let index = schema.index(of: header) else {
                throw MBDataError(
                    .schemaMismatch,
                    "header names unknown field \"\(header)\"; the schema has: \(schema.fields.map(\.name).joined(separator: ", "))",
                    source: name, location: "line \(line)", field: header)
            }
            guard seen.insert(index).inserted else {
                throw MBDataError(.malformedRecord, "header names the field twice", source: name, location: "line \(line)", field: header)
            }
            columnFields.append(index)
        }
        if let missing = schema.fields.indices.first(where: { !seen.contains($0) }) {
            throw MBDataError(
                .schemaMismatch, "header lacks a column for the field", source: name, location: "line \(line)",
                field: schema.fields[missing].name)
        }
    }

    mutating func next() throws -> SourceItem? {
        while true {
            let record: ([[UInt8]], Int)?
            do {
                record = try nextRecord()
            } catch let error as MBDataError where error.code != .limitExceeded {
                return .invalid(error)
            }
            guard let (cells, line) = record else { return nil }
            if cells.count == 1 && cells[0].isEmpty { continue }
            let location = "line \(line)"
            guard cells.count == columnFields.count else {
                return .invalid(
                    MBDataError(
                        .malformedRecord, "expected \(columnFields.count) cells as in the header, got \(cells.count)",
                        source: name, location: location))
            }
            var values = [SampleValue](repeating: .integer(0), count: schema.fields.count)
            for (column, cell) in cells.enumerated() {
                let field = schema.fields[columnFields[column]]
                do {
                    values[columnFields[column]] = try TextCellDecoder.value(of: field, cell: cell, maxBytes: maxRecordBytes)
                } catch let error as MBDataError {
                    return .invalid(error.located(source: name, location: location, field: field.name))
                }
            }
            return .sample(values)
        }
    }

    /// The cells of the next record and the line it starts on. A record (quoted cells may
    /// span lines) longer than `maxRecordBytes` is refused with `.limitExceeded`.
    private mutating func nextRecord() throws -> ([[UInt8]], Int)? {
        var cells: [[UInt8]] = []
        var cell: [UInt8] = []
        var inQuotes = false
        var afterQuote = false
        var startLine = 0
        var started = false
        var recordBytes = 0
        let (name, maxRecordBytes) = (self.name, self.maxRecordBytes)
        while true {
            let lineNumber = lines.lineNumber + 1
            let more: Bool? = try lines.next { line in
                if !started {
                    started = true
                    startLine = lineNumber
                } else {
                    cell.append(0x0A)
                }
                recordBytes += line.count + 1
                guard recordBytes <= maxRecordBytes else {
                    throw RecordLimits.exceeded("a record of more than \(maxRecordBytes) bytes", limit: maxRecordBytes)
                        .located(source: name, location: "line \(startLine)")
                }
                // Runs of ordinary bytes are copied at once (memchr), not byte by byte.
                func find(_ byte: UInt8, from start: Int) -> Int {
                    guard start < line.count, let found = memchr(line.baseAddress! + start, Int32(byte), line.count - start) else {
                        return line.count
                    }
                    return UnsafeRawPointer(found) - line.baseAddress!
                }
                func copy(_ range: Range<Int>) {
                    guard !range.isEmpty else { return }
                    cell.append(contentsOf: UnsafeBufferPointer(start: line.baseAddress!.assumingMemoryBound(to: UInt8.self) + range.lowerBound, count: range.count))
                }
                var i = 0
                while i < line.count {
                    if inQuotes {
                        let quote = find(0x22, from: i)
                        copy(i..<quote)
                        i = quote
                        guard i < line.count else { break }
                        if i + 1 < line.count && line[i + 1] == 0x22 {
                            cell.append(0x22)
                            i += 2
                        } else {
                            inQuotes = false
                            afterQuote = true
                            i += 1
                        }
                        continue
                    }
                    let c = line[i]
                    if c == 0x2C {
                        cells.append(cell)
                        cell = []
                        afterQuote = false
                        i += 1
                    } else if c == 0x22 && cell.isEmpty && !afterQuote {
                        inQuotes = true
                        i += 1
                    } else if afterQuote {
                        throw MBDataError(
                            .malformedRecord, "unexpected character after a closing quote at column \(i + 1)",
                            source: name, location: "line \(lineNumber)")
                    } else {
                        // A quote inside an unquoted cell is an ordinary byte.
                        let comma = find(0x2C, from: i)
                        copy(i..<comma)
                        i = comma
                    }
                }
                return inQuotes
            }
            guard let stillQuoted = more else {
                if !started { return nil }
                throw MBDataError(
                    .malformedRecord, "unterminated quoted cell at end of file", source: name, location: "line \(startLine)")
            }
            if !stillQuoted { break }
        }
        cells.append(cell)
        return (cells, startLine)
    }
}

import Foundation

#if canImport(Glibc)
    import Glibc
#endif
