/// Writes an output as one text file: JSON lines or CSV (``OutputExportFormat``).
final class OutputTextSink: OutputExportSink {
    private let schema: Schema
    private let csv: Bool
    private let file: OutputExportFile
    /// The `"name": ` prefix of each field in a JSON line.
    private let keys: [[UInt8]]

    init(path: String, schema: Schema, csv: Bool) throws {
        self.schema = schema
        self.csv = csv
        file = try OutputExportFile(path: path)
        keys = schema.fields.map { Array(", \"\($0.name)\": ".utf8) }
        if csv { file.buffer += Array((["_id"] + schema.fields.map(\.name)).joined(separator: ",").utf8) + [0x0A] }
    }

    func append(id: Int64, cells: [UnsafeRawBufferPointer]) throws {
        if csv {
            file.buffer += String(id).utf8
            for (index, field) in schema.fields.enumerated() {
                file.buffer.append(UInt8(ascii: ","))
                if field.isScalar {
                    OutputValueText.appendElement(cells[index], 0, field.dtype, to: &file.buffer)
                } else {
                    file.buffer.append(UInt8(ascii: "\""))
                    OutputValueText.appendList(cells[index], field, to: &file.buffer)
                    file.buffer.append(UInt8(ascii: "\""))
                }
            }
        } else {
            file.buffer += #"{"_id": "#.utf8
            file.buffer += String(id).utf8
            for (index, field) in schema.fields.enumerated() {
                file.buffer += keys[index]
                if field.isScalar {
                    OutputValueText.appendElement(cells[index], 0, field.dtype, to: &file.buffer)
                } else {
                    OutputValueText.appendList(cells[index], field, to: &file.buffer)
                }
            }
            file.buffer.append(UInt8(ascii: "}"))
        }
        file.buffer.append(0x0A)
        try file.flushIfFull()
    }

    func commit(rows: Int) throws {
        try file.commit()
    }
}

/// The JSON text of stored values: numbers in the shortest form that reads back to the
/// same value of their dtype, NaN and infinities as `NaN`, `Infinity`, `-Infinity`.
enum OutputValueText {
    /// A value of a field with a shape, as nested JSON lists in row-major order.
    static func appendList(_ bytes: UnsafeRawBufferPointer, _ field: Field, to out: inout [UInt8]) {
        // spans[d]: the elements one list at depth d holds.
        var spans: [Int] = []
        var span = 1
        for dimension in field.shape.reversed() {
            span *= dimension ?? 0
            spans.insert(span, at: 0)
        }
        let count = spans.first ?? 1
        for index in 0..<count {
            if index > 0 { out += ", ".utf8 }
            for length in spans where index % length == 0 { out.append(UInt8(ascii: "[")) }
            appendElement(bytes, index, field.dtype, to: &out)
            for length in spans.reversed() where (index + 1) % length == 0 { out.append(UInt8(ascii: "]")) }
        }
    }

    /// Element `index` of a little-endian buffer of `dtype`.
    static func appendElement(_ bytes: UnsafeRawBufferPointer, _ index: Int, _ dtype: DType, to out: inout [UInt8]) {
        func load<T: FixedWidthInteger>(_: T.Type) -> T { T(littleEndian: bytes.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)) }
        switch dtype {
        case .bool: out += (bytes[index] == 0 ? "false" : "true").utf8
        case .uint8: out += String(bytes[index]).utf8
        case .int8: out += String(Int8(bitPattern: bytes[index])).utf8
        case .int16: out += String(load(Int16.self)).utf8
        case .int32: out += String(load(Int32.self)).utf8
        case .int64: out += String(load(Int64.self)).utf8
        case .float16: appendFloat(Float16(bitPattern: load(UInt16.self)), to: &out)
        case .bfloat16: appendFloat(BFloat16.decode(load(UInt16.self)), to: &out)
        case .float32: appendFloat(Float(bitPattern: load(UInt32.self)), to: &out)
        case .float64: appendFloat(Double(bitPattern: load(UInt64.self)), to: &out)
        case .bytes, .string: break
        }
    }

    /// Swift's `description` of a float is the shortest text that parses back to it.
    private static func appendFloat<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F, to out: inout [UInt8]) {
        if value.isNaN {
            out += "NaN".utf8
        } else if value.isInfinite {
            out += (value < 0 ? "-Infinity" : "Infinity").utf8
        } else {
            out += value.description.utf8
        }
    }
}
