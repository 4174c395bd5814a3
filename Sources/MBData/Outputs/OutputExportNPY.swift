import Foundation

/// Writes an output as `.npy` files in a directory: `_id.npy` and one `<field>.npy` per
/// field, all filled in one pass over the rows, whose count the headers need up front.
final class OutputNPYSink: OutputExportSink {
    private let schema: Schema
    private let rows: Int
    private let ids: OutputExportFile
    private let columns: [OutputExportFile]

    init(directory: String, schema: Schema, rows: Int) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw MBDataError(.invalidArgument, "an NPY export goes to a directory, and this is a file", source: directory, parameter: "path")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw MBDataError(.storage, "cannot create the directory: \(error.localizedDescription)", source: directory)
        }
        self.schema = schema
        self.rows = rows
        let url = URL(fileURLWithPath: directory)
        ids = try OutputExportFile(path: url.appendingPathComponent("_id.npy").path)
        ids.buffer += NPYFormat.header(descr: "<i8", shape: [rows])
        columns = try schema.fields.map { field in
            let file = try OutputExportFile(path: url.appendingPathComponent(field.name + ".npy").path)
            file.buffer += NPYFormat.header(descr: NPYFormat.descr(exporting: field.dtype), shape: [rows] + field.shape.map { $0 ?? 0 })
            return file
        }
    }

    func append(id: Int64, cells: [UnsafeRawBufferPointer]) throws {
        ElementEncoding.appendLittleEndian(UInt64(bitPattern: id), to: &ids.buffer)
        try ids.flushIfFull()
        for (index, field) in schema.fields.enumerated() {
            let file = columns[index]
            if field.dtype == .bfloat16 {
                for element in 0..<(cells[index].count / 2) {
                    let bits = UInt16(littleEndian: cells[index].loadUnaligned(fromByteOffset: element * 2, as: UInt16.self))
                    ElementEncoding.appendLittleEndian(BFloat16.decode(bits).bitPattern, to: &file.buffer)
                }
            } else {
                file.buffer.append(contentsOf: cells[index])
            }
            try file.flushIfFull()
        }
    }

    func commit(rows: Int) throws {
        guard rows == self.rows else {
            throw MBDataError(.corruptData, "the output table gave \(rows) rows after counting \(self.rows)")
        }
        try ids.commit()
        for file in columns { try file.commit() }
    }
}

/// The `.npy` header as numpy 1.x and 2.x write it, so that exported files are byte for
/// byte what `np.save` would write of the same array.
enum NPYFormat {
    /// numpy's `ARRAY_ALIGN`: magic, length and header end on a multiple of it.
    private static let alignment = 64
    /// numpy's `GROWTH_AXIS_MAX_DIGITS`: room left to grow the first dimension in place.
    private static let growthDigits = 21

    /// The `descr` of an exported field: its dtype's, with bfloat16 widened to float32.
    static func descr(exporting dtype: DType) -> String {
        switch dtype {
        case .bool: "|b1"
        case .uint8: "|u1"
        case .int8: "|i1"
        case .int16: "<i2"
        case .int32: "<i4"
        case .int64: "<i8"
        case .float16: "<f2"
        case .bfloat16, .float32: "<f4"
        case .float64: "<f8"
        case .bytes, .string: "|O"
        }
    }

    /// Magic, version, header length and the header dictionary padded with spaces and a
    /// newline: version 1.0, or 2.0 (a 4-byte length) when the header outgrows 65535 bytes,
    /// as numpy chooses.
    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dictionary = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        if let first = shape.first { dictionary += String(repeating: " ", count: max(0, growthDigits - String(first).count)) }
        for lengthBytes in [2, 4] {
            let prefixLength = 6 + 2 + lengthBytes
            let padding = alignment - (prefixLength + dictionary.utf8.count + 1) % alignment
            let text = Array((dictionary + String(repeating: " ", count: padding) + "\n").utf8)
            guard text.count < 1 << (8 * lengthBytes) else { continue }
            let length = (0..<lengthBytes).map { UInt8(truncatingIfNeeded: text.count >> (8 * $0)) }
            return [0x93] + Array("NUMPY".utf8) + [lengthBytes == 2 ? 1 : 2, 0] + length + text
        }
        preconditionFailure("an NPY header of \(dictionary.utf8.count) bytes")
    }
}
