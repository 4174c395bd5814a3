import Foundation

/// Parses one JSONL line into the values of a sample, guided by the schema: tensors are
/// read from nested arrays straight into their little-endian bytes, with the shape checked
/// as they go.
struct JSONRecordParser {
    let schema: Schema
    /// No value may grow past this many bytes (`.limitExceeded`).
    let maxRecordBytes: Int
    private let names: [[UInt8]]

    init(schema: Schema, maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes) {
        self.schema = schema
        self.maxRecordBytes = maxRecordBytes
        names = schema.fields.map { Array($0.name.utf8) }
    }

    /// Parses one line held in memory (the JSON fuzz target and tests).
    package func parse(bytes: [UInt8]) throws -> [SampleValue] {
        try bytes.withUnsafeBytes { try parse($0) }
    }

    func parse(_ line: UnsafeRawBufferPointer) throws -> [SampleValue] {
        var scanner = JSONScanner(line)
        var values = [SampleValue?](repeating: nil, count: names.count)
        scanner.skipWhitespace()
        guard scanner.current == UInt8(ascii: "{") else {
            throw scanner.error("a JSON object '{' starting the line")
        }
        scanner.position += 1
        if !scanner.consume(UInt8(ascii: "}")) {
            repeat {
                let keyColumn = scanner.position + 1
                let key = try scanner.stringBytes()
                guard let index = names.firstIndex(of: key) else {
                    let name = String(decoding: key, as: UTF8.self)
                    throw MBDataError(
                        .schemaMismatch,
                        "unknown field \"\(name)\" at column \(keyColumn); the schema has: \(schema.fields.map(\.name).joined(separator: ", "))",
                        field: name)
                }
                let field = schema.fields[index]
                guard values[index] == nil else {
                    throw MBDataError(.malformedRecord, "field appears twice", field: field.name)
                }
                try scanner.expect(UInt8(ascii: ":"), "':' after the key")
                do {
                    values[index] = try Self.value(of: field, from: &scanner, maxBytes: maxRecordBytes)
                } catch let error as MBDataError {
                    throw error.located(field: field.name)
                }
            } while scanner.consume(UInt8(ascii: ","))
            try scanner.expect(UInt8(ascii: "}"), "',' or '}'")
        }
        try scanner.expectEnd()
        if let missing = values.firstIndex(where: { $0 == nil }) {
            let field = schema.fields[missing]
            throw MBDataError(.schemaMismatch, "missing field (expected \(field.typeDescription))", field: field.name)
        }
        return values.map { $0! }
    }

    static func value(of field: Field, from scanner: inout JSONScanner, maxBytes: Int) throws -> SampleValue {
        if !field.isScalar {
            guard scanner.peekKind() == "an array" else {
                throw MBDataError(
                    .schemaMismatch, "expected \(field.typeDescription) as nested arrays, got \(scanner.peekKind())")
            }
            var out: [UInt8] = []
            out.reserveCapacity(field.fixedByteCount ?? 256)
            try tensor(field, depth: 0, from: &scanner, into: &out, maxBytes: maxBytes)
            return .blob(out)
        }
        switch field.dtype {
        case .string:
            guard scanner.peekKind() == "a string" else {
                throw MBDataError(.schemaMismatch, "expected a string, got \(scanner.peekKind())")
            }
            return .text(try scanner.string())
        case .bytes:
            guard scanner.peekKind() == "a string" else {
                throw MBDataError(.schemaMismatch, "expected base64 text for bytes, got \(scanner.peekKind())")
            }
            return .blob(try Base64.decode(try scanner.stringBytes()))
        default:
            return try ElementEncoding.scalarValue(try number(for: field.dtype, from: &scanner), as: field.dtype)
        }
    }

    /// A number, `true`/`false` for bool fields, or `NaN`/`Infinity`/`-Infinity` (as Python's
    /// `json` writes them) for float fields.
    @inline(__always)
    static func number(for dtype: DType, from scanner: inout JSONScanner) throws -> ElementEncoding.Number {
        scanner.skipWhitespace()
        switch scanner.current ?? 0 {
        case UInt8(ascii: "t") where dtype == .bool && scanner.literal("true"): return .integer(1)
        case UInt8(ascii: "f") where dtype == .bool && scanner.literal("false"): return .integer(0)
        case UInt8(ascii: "N") where dtype.isFloat && scanner.literal("NaN"): return .real(.nan)
        case UInt8(ascii: "I") where dtype.isFloat && scanner.literal("Infinity"): return .real(.infinity)
        case UInt8(ascii: "-") where dtype.isFloat && scanner.literal("-Infinity"): return .real(-.infinity)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try scanner.number(for: dtype)
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            throw MBDataError(
                .schemaMismatch,
                "expected \(dtype.rawValue), got a non-finite token (NaN, Infinity and -Infinity are accepted only in float fields)")
        case UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got \(scanner.peekKind())")
        default:
            throw scanner.error("a value")
        }
    }

    private static func tensor(_ field: Field, depth: Int, from scanner: inout JSONScanner, into out: inout [UInt8], maxBytes: Int) throws {
        let expected = field.shape[depth]
        guard scanner.consume(UInt8(ascii: "[")) else {
            throw MBDataError(
                .schemaMismatch,
                "expected an array at depth \(depth + 1) of \(field.shapeDescription), got \(scanner.peekKind())")
        }
        var count = 0
        let innermost = depth == field.shape.count - 1
        if !scanner.consume(UInt8(ascii: "]")) {
            repeat {
                // Refused as soon as the array is too long, before the rest is parsed.
                if let expected, count == expected { throw tooMany(field, depth: depth, expected: expected) }
                if innermost {
                    try ElementEncoding.append(try number(for: field.dtype, from: &scanner), as: field.dtype, to: &out)
                    if out.count > maxBytes { throw RecordLimits.exceeded("the tensor", limit: maxBytes) }
                } else {
                    try tensor(field, depth: depth + 1, from: &scanner, into: &out, maxBytes: maxBytes)
                }
                count += 1
            } while scanner.consume(UInt8(ascii: ","))
            guard scanner.consume(UInt8(ascii: "]")) else { throw scanner.error("',' or ']'") }
        }
        if let expected, count != expected {
            throw MBDataError(
                .schemaMismatch,
                "expected \(expected) elements at depth \(depth + 1) of shape \(field.shapeDescription), got \(count)")
        }
    }
}

private func tooMany(_ field: Field, depth: Int, expected: Int) -> MBDataError {
    MBDataError(
        .schemaMismatch,
        "expected \(expected) elements at depth \(depth + 1) of shape \(field.shapeDescription), got more")
}

/// Standard base64 (with or without padding) as used for `bytes` in JSONL and CSV.
enum Base64 {
    static func decode(_ text: [UInt8]) throws -> [UInt8] {
        var padded = text
        while padded.count % 4 != 0 { padded.append(UInt8(ascii: "=")) }
        guard let data = Data(base64Encoded: Data(padded)) else {
            throw MBDataError(.malformedRecord, "invalid base64 text for bytes (\(text.count) characters)")
        }
        return [UInt8](data)
    }
}
