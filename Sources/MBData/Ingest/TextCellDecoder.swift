import Foundation

/// Decodes one text cell (CSV) into a field's value: a scalar as its literal, a tensor as
/// space-separated numbers in row-major order, `bytes` as base64, `bool` as true/false/1/0.
enum TextCellDecoder {
    static func value(of field: Field, cell: [UInt8]) throws -> SampleValue {
        if !field.isScalar { return .blob(try tensor(field, cell: cell)) }
        switch field.dtype {
        case .string:
            guard let text = String(validating: cell, as: UTF8.self) else {
                throw MBDataError(.malformedRecord, "text is not valid UTF-8")
            }
            return .text(text)
        case .bytes:
            return .blob(try Base64.decode(cell.filter { $0 != 0x20 }))
        default:
            return try ElementEncoding.scalarValue(try number(trimmed(cell), dtype: field.dtype), as: field.dtype)
        }
    }

    private static func tensor(_ field: Field, cell: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(field.fixedByteCount ?? 256)
        var count = 0
        for token in cell.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }) {
            try ElementEncoding.append(try number(Array(token), dtype: field.dtype), as: field.dtype, to: &out)
            count += 1
        }
        let inner = field.shape.compactMap { $0 }.reduce(1, *)
        if let total = field.fixedElementCount {
            guard count == total else {
                throw MBDataError(
                    .schemaMismatch,
                    "expected \(total) space-separated values for shape \(field.shapeDescription), got \(count)")
            }
        } else if count % inner != 0 {
            throw MBDataError(
                .schemaMismatch,
                "expected a multiple of \(inner) values for shape \(field.shapeDescription), got \(count)")
        }
        return out
    }

    private static func trimmed(_ cell: [UInt8]) -> [UInt8] {
        Array(cell.drop { $0 == 0x20 }.reversed().drop { $0 == 0x20 }.reversed())
    }

    private static func number(_ token: [UInt8], dtype: DType) throws -> ElementEncoding.Number {
        let text = String(decoding: token, as: UTF8.self)
        if dtype == .bool {
            switch text.lowercased() {
            case "true": return .integer(1)
            case "false": return .integer(0)
            default: break
            }
        }
        if dtype.isFloat {
            switch text.lowercased() {
            case "nan": return .real(.nan)
            case "inf", "+inf", "infinity": return .real(.infinity)
            case "-inf", "-infinity": return .real(-.infinity)
            default: break
            }
        }
        guard !token.isEmpty else {
            throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got an empty cell")
        }
        return try token.withUnsafeBytes { raw in
            var scanner = JSONScanner(raw)
            guard let number = try? scanner.number(), scanner.isAtEnd else {
                throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got \"\(text)\"")
            }
            return number
        }
    }
}
