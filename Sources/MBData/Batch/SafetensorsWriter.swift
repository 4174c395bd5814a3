/// Writes a safetensors buffer: an 8-byte little-endian header length, a JSON header
/// (padded with spaces to 8 bytes) naming each tensor's dtype, shape and byte range, then
/// the tensors' bytes back to back in header order.
struct SafetensorsWriter {
    struct Tensor {
        var name: String
        var dtype: String
        var shape: [Int]
        var bytes: [UInt8]
    }

    private(set) var tensors: [Tensor] = []
    var metadata: [String: String] = [:]

    mutating func add(_ name: String, dtype: String, shape: [Int], bytes: [UInt8]) {
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    func encoded() -> [UInt8] {
        let header = Self.header(metadata: metadata, tensors: tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) })
        var out: [UInt8] = []
        out.reserveCapacity(header.count + tensors.reduce(0) { $0 + $1.bytes.count })
        out.append(contentsOf: header)
        for tensor in tensors { out.append(contentsOf: tensor.bytes) }
        return out
    }

    /// The 8-byte length and the space-padded JSON header of tensors with these names,
    /// dtypes, shapes and byte counts, in this order: what precedes their bytes.
    static func header(metadata: [String: String], tensors: [(name: String, dtype: String, shape: [Int], byteCount: Int)]) -> [UInt8] {
        var entries: [String] = []
        var offset = 0
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(Self.quoted($0.key)):\(Self.quoted($0.value))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        for tensor in tensors {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append(
                "\(Self.quoted(tensor.name)):{\"dtype\":\"\(tensor.dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.byteCount)]}")
            offset += tensor.byteCount
        }
        var json = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        return out
    }

    /// Names here are schema field names and fixed suffixes; escaping covers the rest anyway.
    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func dtypeName(_ dtype: DType) -> String {
        switch dtype {
        case .uint8, .bytes, .string: "U8"
        case .int8: "I8"
        case .int16: "I16"
        case .int32: "I32"
        case .int64: "I64"
        case .float16: "F16"
        case .bfloat16: "BF16"
        case .float32: "F32"
        case .float64: "F64"
        case .bool: "BOOL"
        }
    }
}

import Foundation
