/// Collates rows into one safetensors batch (DESIGN §4):
/// - fixed-shape fields → `name` `[B, …]`;
/// - a field with a variable first dimension → `name` (values concatenated along it) and
///   `name.offsets` int64 `[B+1]`, or, with a pad length L, `name` `[B, L, …]` zero-padded
///   (longer values truncated) and `name.lengths` int64 `[B]`;
/// - a variable dimension elsewhere → `name` flat and `name.offsets` in elements;
/// - `bytes`/`string` → `name` uint8 values and `name.offsets` `[B+1]` in bytes;
/// - `_id` int64 `[B]` (-1 on padding rows), and `_valid` bool `[B]` when the plan pads;
/// - `_source` int32 `[B]` in a mixture's batches: each row's source (-1 on padding rows).
package struct BatchCollator: Sendable {
    package let schema: Schema
    /// Fields with a variable first dimension to pad to a fixed length.
    package let padLengths: [String: Int]
    /// Add a `_valid` tensor (plans with `TailPolicy.pad`).
    package let flagsValidity: Bool

    package init(schema: Schema, padLengths: [String: Int] = [:], flagsValidity: Bool = false) throws {
        for (name, length) in padLengths {
            guard let field = schema.field(named: name), !field.isFixedShape, field.shape.first == .some(nil), length > 0 else {
                throw MBDataError(
                    .invalidArgument, "only fields whose first dimension is variable can be padded, to a positive length", field: name)
            }
        }
        self.schema = schema
        self.padLengths = padLengths
        self.flagsValidity = flagsValidity
    }

    /// A row: its sample id and values in schema order; nil is a padding row.
    package typealias Row = (id: Int64, values: [SampleValue])?

    /// The batch of `rows`; `sources` (a mixture's) becomes the `_source` tensor.
    package func collate(_ rows: [Row], metadata: [String: String] = [:], sources: [Int32]? = nil) -> [UInt8] {
        var writer = SafetensorsWriter()
        writer.metadata = metadata
        let count = rows.count
        for (index, field) in schema.fields.enumerated() {
            let values = rows.map { $0?.values[index] }
            if field.dtype.isVariableLength {
                addVariableBytes(field, values, to: &writer)
            } else if field.isFixedShape {
                addFixed(field, values, count: count, to: &writer)
            } else if let length = padLengths[field.name] {
                addPadded(field, values, length: length, to: &writer)
            } else {
                addConcatenated(field, values, to: &writer)
            }
        }
        writer.add("_id", dtype: "I64", shape: [count], bytes: ElementEncoding.littleEndianBytes(rows.map { $0?.id ?? -1 }))
        if flagsValidity {
            writer.add("_valid", dtype: "BOOL", shape: [count], bytes: rows.map { $0 == nil ? 0 : 1 })
        }
        if let sources {
            writer.add("_source", dtype: "I32", shape: [count], bytes: ElementEncoding.littleEndianBytes(sources))
        }
        return writer.encoded()
    }

    private func addFixed(_ field: Field, _ values: [SampleValue?], count: Int, to writer: inout SafetensorsWriter) {
        let size = field.fixedByteCount!
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size * count)
        for value in values { Self.appendFixed(value, of: field, to: &bytes) }
        writer.add(field.name, dtype: SafetensorsWriter.dtypeName(field.dtype), shape: [count] + field.shape.map { $0! }, bytes: bytes)
    }

    /// Appends the bytes of one value of fixed-shape `field`: zeros for nil (padding).
    static func appendFixed(_ value: SampleValue?, of field: Field, to bytes: inout [UInt8]) {
        switch value {
        case .blob(let b)?: bytes.append(contentsOf: b)
        case .integer(let i)?: try! ElementEncoding.append(.integer(i), as: field.dtype, to: &bytes)
        case .real(let d)?: try! ElementEncoding.append(.real(d), as: field.dtype, to: &bytes)
        case .text?, nil: bytes.append(contentsOf: repeatElement(0, count: field.fixedByteCount!))
        }
    }

    private func addVariableBytes(_ field: Field, _ values: [SampleValue?], to writer: inout SafetensorsWriter) {
        var bytes: [UInt8] = []
        var offsets: [Int64] = [0]
        for value in values {
            switch value {
            case .blob(let b)?: bytes.append(contentsOf: b)
            case .text(let s)?: bytes.append(contentsOf: s.utf8)
            default: break
            }
            offsets.append(Int64(bytes.count))
        }
        writer.add(field.name, dtype: "U8", shape: [bytes.count], bytes: bytes)
        writer.add(field.name + ".offsets", dtype: "I64", shape: [offsets.count], bytes: ElementEncoding.littleEndianBytes(offsets))
    }

    /// Bytes of one unit of the variable dimension (the product of the other dimensions).
    private func unitBytes(_ field: Field) -> Int {
        field.shape.compactMap { $0 }.reduce(field.dtype.itemSize!, *)
    }

    private func addConcatenated(_ field: Field, _ values: [SampleValue?], to writer: inout SafetensorsWriter) {
        let leading = field.shape.first == .some(nil)
        let unit = leading ? unitBytes(field) : field.dtype.itemSize!
        var bytes: [UInt8] = []
        var offsets: [Int64] = [0]
        for value in values {
            if case .blob(let b)? = value { bytes.append(contentsOf: b) }
            offsets.append(Int64(bytes.count / unit))
        }
        let shape = leading ? [bytes.count / unit] + field.shape.dropFirst().map { $0! } : [bytes.count / unit]
        writer.add(field.name, dtype: SafetensorsWriter.dtypeName(field.dtype), shape: shape, bytes: bytes)
        writer.add(field.name + ".offsets", dtype: "I64", shape: [offsets.count], bytes: ElementEncoding.littleEndianBytes(offsets))
    }

    private func addPadded(_ field: Field, _ values: [SampleValue?], length: Int, to writer: inout SafetensorsWriter) {
        let unit = unitBytes(field)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * length * unit)
        var lengths: [Int64] = []
        for value in values {
            var kept = 0
            if case .blob(let b)? = value {
                kept = min(b.count / unit, length)
                bytes.append(contentsOf: b[0..<(kept * unit)])
            }
            bytes.append(contentsOf: repeatElement(0, count: (length - kept) * unit))
            lengths.append(Int64(kept))
        }
        writer.add(
            field.name, dtype: SafetensorsWriter.dtypeName(field.dtype), shape: [values.count, length] + field.shape.dropFirst().map { $0! },
            bytes: bytes)
        writer.add(field.name + ".lengths", dtype: "I64", shape: [lengths.count], bytes: ElementEncoding.littleEndianBytes(lengths))
    }
}

extension ElementEncoding {
    static func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * MemoryLayout<T>.size)
        for value in values { appendLittleEndian(value, to: &out) }
        return out
    }
}
