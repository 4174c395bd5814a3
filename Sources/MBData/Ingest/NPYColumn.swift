/// Reads the rows of one NPY array as the values of one schema field, converting the
/// element type only where no value changes (uint8 → int64 yes; float64 0.1 → float32 no).
final class NPYColumn {
    let header: NPYHeader
    let field: Field
    let source: String
    private var stream: any ByteStream
    private var block: [UInt8] = []
    private var blockRows = 0
    private var nextRowInBlock = 0
    private var rowsDelivered = 0
    private let rowsPerBlock: Int
    /// The file holds exactly the schema's dtype, little-endian: rows are copied as they are.
    private let isRawCopy: Bool

    init(header: NPYHeader, stream: any ByteStream, field: Field, source: String, maxRecordBytes: Int) throws {
        self.header = header
        self.stream = stream
        self.field = field
        self.source = source
        // Column-major data is laid out differently unless at most one dimension exceeds 1.
        if header.fortranOrder && header.shape.filter({ $0 > 1 }).count > 1 {
            throw MBDataError(
                .schemaMismatch, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray", source: source,
                field: field.name)
        }
        guard header.shape.count >= 1 else {
            throw MBDataError(.schemaMismatch, "a 0-d array holds no samples; expected shape (N, …)", source: source, field: field.name)
        }
        guard field.isFixedShape else {
            throw MBDataError(
                .schemaMismatch,
                "field has variable shape \(field.shapeDescription); NPY arrays are rectangular, use JSONL or CSV",
                source: source, field: field.name)
        }
        let trailing = Array(header.shape.dropFirst())
        if field.dtype.isVariableLength {
            guard trailing.isEmpty, header.kind == .bytes || header.kind == .unicode else {
                throw MBDataError(
                    .schemaMismatch,
                    "expected an array of shape (N,) with dtype S or U for \(field.dtype.rawValue), got \(header.descr) \(header.shapeDescription)",
                    source: source, field: field.name)
            }
        } else {
            guard trailing == field.shape.map({ $0! }) else {
                let expected = "(N" + field.shape.map { ", \($0!)" }.joined() + (field.isScalar ? ",)" : ")")
                throw MBDataError(
                    .schemaMismatch, "expected shape \(expected), got \(header.shapeDescription)", source: source, field: field.name)
            }
            guard header.kind != .bytes && header.kind != .unicode else {
                throw MBDataError(
                    .schemaMismatch, "expected numbers for \(field.typeDescription), got NPY dtype \(header.descr)",
                    source: source, field: field.name)
            }
        }
        guard header.rowByteCount <= maxRecordBytes else {
            throw RecordLimits.exceeded("one row of \(header.shapeDescription) \(header.descr) (\(header.rowByteCount) bytes)", limit: maxRecordBytes)
                .located(source: source, field: field.name)
        }
        isRawCopy = !header.bigEndian && Self.sameType(header, field.dtype)
        rowsPerBlock = max(1, min(header.rowCount, (1 << 20) / max(1, header.rowByteCount)))
    }

    private static func sameType(_ header: NPYHeader, _ dtype: DType) -> Bool {
        switch (header.kind, header.itemSize, dtype) {
        case (.unsigned, 1, .uint8), (.signed, 1, .int8), (.signed, 2, .int16), (.signed, 4, .int32),
            (.signed, 8, .int64), (.float, 2, .float16), (.float, 4, .float32), (.float, 8, .float64), (.bool, 1, .bool):
            true
        default: false
        }
    }

    /// The value of the next row. `row` is the 0-based record number, for messages.
    func next(row: Int) throws -> Result<SampleValue, MBDataError> {
        if nextRowInBlock == blockRows { try fill() }
        let offset = nextRowInBlock * header.rowByteCount
        nextRowInBlock += 1
        return block.withUnsafeBytes { raw -> Result<SampleValue, MBDataError> in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[offset..<offset + header.rowByteCount])
            do {
                return .success(try value(of: bytes))
            } catch let error as MBDataError {
                return .failure(error.located(source: source, location: "record \(row)", field: field.name))
            } catch {
                return .failure(MBDataError(.malformedRecord, "\(error)", source: source, location: "record \(row)"))
            }
        }
    }

    private func fill() throws {
        let rows = min(rowsPerBlock, header.rowCount - rowsDelivered)
        let wanted = rows * header.rowByteCount
        if block.count < wanted { block = [UInt8](repeating: 0, count: wanted) }
        let got = try block.withUnsafeMutableBytes { try stream.readFully(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<wanted])) }
        guard got == wanted else {
            throw MBDataError(
                .malformedRecord,
                "truncated: header declares \(header.shapeDescription) \(header.descr) = \(header.dataByteCount) data bytes, the data ends after \(rowsDelivered * header.rowByteCount + got)",
                source: source, field: field.name)
        }
        rowsDelivered += rows
        blockRows = rows
        nextRowInBlock = 0
    }

    private func value(of bytes: UnsafeRawBufferPointer) throws -> SampleValue {
        switch field.dtype {
        case .bytes, .string:
            return try text(bytes)
        default:
            break
        }
        if field.isScalar {
            return try ElementEncoding.scalarValue(try losslessNumber(bytes, at: 0), as: field.dtype)
        }
        if isRawCopy { return .blob(Array(bytes)) }
        var out: [UInt8] = []
        out.reserveCapacity(field.fixedByteCount!)
        for i in 0..<header.elementsPerRow {
            try ElementEncoding.append(try losslessNumber(bytes, at: i), as: field.dtype, to: &out)
        }
        return .blob(out)
    }

    /// Element `index` as a number, refused when the schema's dtype cannot hold it exactly.
    private func losslessNumber(_ bytes: UnsafeRawBufferPointer, at index: Int) throws -> ElementEncoding.Number {
        let number = element(bytes, at: index)
        guard field.dtype.isFloat else { return number }
        let exact: Bool
        switch number {
        case .integer(let i):
            exact = Int64(exactly: try ElementEncoding.real(number, as: field.dtype)) == i
        case .real(let d):
            exact = d.isNaN || (try? ElementEncoding.real(number, as: field.dtype)) == d
        }
        guard exact else {
            throw MBDataError(
                .schemaMismatch,
                "value \(number.text) of NPY dtype \(header.descr) does not convert to \(field.dtype.rawValue) without loss")
        }
        return number
    }

    private func element(_ bytes: UnsafeRawBufferPointer, at index: Int) -> ElementEncoding.Number {
        let offset = index * header.itemSize
        var raw: UInt64 = 0
        for i in 0..<header.itemSize {
            let byte = UInt64(bytes[offset + (header.bigEndian ? header.itemSize - 1 - i : i)])
            raw |= byte << (8 * UInt64(i))
        }
        switch header.kind {
        case .bool, .unsigned:
            return raw <= UInt64(Int64.max) ? .integer(Int64(raw)) : .real(Double(raw))
        case .signed:
            let shift = UInt64(64 - 8 * header.itemSize)
            return .integer(Int64(bitPattern: raw << shift) >> Int64(shift))
        case .float:
            switch header.itemSize {
            case 2: return .real(Double(Float(Float16(bitPattern: UInt16(raw)))))
            case 4: return .real(Double(Float(bitPattern: UInt32(raw))))
            default: return .real(Double(bitPattern: raw))
            }
        case .bytes, .unicode:
            return .integer(0)
        }
    }

    private func text(_ bytes: UnsafeRawBufferPointer) throws -> SampleValue {
        if header.kind == .bytes {
            var end = bytes.count
            while end > 0 && bytes[end - 1] == 0 { end -= 1 }
            let content = Array(bytes[0..<end])
            if field.dtype == .bytes { return .blob(content) }
            guard let text = String(validating: content, as: UTF8.self) else {
                throw MBDataError(.malformedRecord, "bytes are not valid UTF-8 text")
            }
            return .text(text)
        }
        var scalars = String.UnicodeScalarView()
        for i in 0..<(bytes.count / 4) {
            var code: UInt32 = 0
            for b in 0..<4 {
                code |= UInt32(bytes[i * 4 + (header.bigEndian ? 3 - b : b)]) << (8 * UInt32(b))
            }
            if code == 0 { break }
            guard let scalar = Unicode.Scalar(code) else {
                throw MBDataError(.malformedRecord, "invalid unicode code point \(code)")
            }
            scalars.append(scalar)
        }
        let text = String(scalars)
        return field.dtype == .string ? .text(text) : .blob(Array(text.utf8))
    }
}
