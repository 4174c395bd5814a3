import Foundation

/// Decodes one text cell (CSV) into a field's value: a scalar as its literal, a tensor as
/// space-separated numbers in row-major order, `bytes` as base64, `bool` as true/false/1/0.
enum TextCellDecoder {
    static func value(of field: Field, cell: [UInt8], maxBytes: Int = RecordLimits.defaultMaxRecordBytes) throws -> SampleValue {
        if !field.isScalar { return .blob(try tensor(field, cell: cell, maxBytes: maxBytes)) }
        switch field.dtype {
        case .string:
            guard let text = String(validating: cell, as: UTF8.self) else {
                throw MBDataError(.malformedRecord, "text is not valid UTF-8")
            }
            return .text(text)
        case .bytes:
            return .blob(try Base64.decode(cell.filter { $0 != 0x20 }))
        default:
            return try ElementEncoding.scalarValue(try number(trimmed(cell)[...], dtype: field.dtype), as: field.dtype)
        }
    }

    /// The cell's numbers, read one token at a time: a fixed shape is refused at its first
    /// extra value and any tensor past `maxBytes`, so a huge cell costs no more than itself.
    private static func tensor(_ field: Field, cell: [UInt8], maxBytes: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(field.fixedByteCount ?? 256, maxBytes))
        var count = 0
        let total = field.fixedElementCount
        var i = 0
        while i < cell.count {
            if cell[i] == 0x20 || cell[i] == 0x09 {
                i += 1
                continue
            }
            var end = i
            while end < cell.count && cell[end] != 0x20 && cell[end] != 0x09 { end += 1 }
            if let total, count == total {
                throw MBDataError(
                    .schemaMismatch, "expected \(total) space-separated values for shape \(field.shapeDescription), got more")
            }
            try ElementEncoding.append(try number(cell[i..<end], dtype: field.dtype), as: field.dtype, to: &out)
            if out.count > maxBytes { throw RecordLimits.exceeded("the tensor", limit: maxBytes) }
            count += 1
            i = end
        }
        // The schema bounds each dimension to 2^31 - 1, but not their product.
        let inner = CheckedSize.product(field.shape.compactMap { $0 }) ?? Int.max
        if let total {
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

    /// A number token; NaN and infinities only as the explicit words (any case) `nan`, `inf`,
    /// `+inf`, `-inf`, `infinity`, `+infinity`, `-infinity`, and only for float fields.
    private static func number(_ token: ArraySlice<UInt8>, dtype: DType) throws -> ElementEncoding.Number {
        let text = String(decoding: token.prefix(64), as: UTF8.self) + (token.count > 64 ? "…" : "")
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
            case "inf", "+inf", "infinity", "+infinity": return .real(.infinity)
            case "-inf", "-infinity": return .real(-.infinity)
            default: break
            }
        }
        guard !token.isEmpty else {
            throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got an empty cell")
        }
        return try token.withUnsafeBytes { raw in
            var scanner = JSONScanner(raw)
            let number: ElementEncoding.Number
            do {
                number = try scanner.number(for: dtype)
            } catch let error as MBDataError where error.code == .schemaMismatch {
                throw error
            } catch {
                throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got \"\(text)\"")
            }
            guard scanner.isAtEnd else { throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got \"\(text)\"") }
            return number
        }
    }
}
