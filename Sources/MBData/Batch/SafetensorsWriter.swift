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
    /// dtypes, shapes and byte counts, in this order: what precedes their bytes. Written as
    /// bytes, not strings: every live batch builds one.
    static func header(metadata: [String: String], tensors: [(name: String, dtype: String, shape: [Int], byteCount: Int)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(contentsOf: repeatElement(0, count: 8))
        out.append(UInt8(ascii: "{"))
        if !metadata.isEmpty {
            out.append(contentsOf: #""__metadata__":{"#.utf8)
            for (index, pair) in metadata.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendQuoted(pair.key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendQuoted(pair.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for (index, tensor) in tensors.enumerated() {
            if index > 0 || !metadata.isEmpty { out.append(UInt8(ascii: ",")) }
            appendQuoted(tensor.name, to: &out)
            out.append(contentsOf: #":{"dtype":""#.utf8)
            out.append(contentsOf: tensor.dtype.utf8)
            out.append(contentsOf: #"","shape":["#.utf8)
            for (axis, extent) in tensor.shape.enumerated() {
                if axis > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: String(extent).utf8)
            }
            out.append(contentsOf: #"],"data_offsets":["#.utf8)
            out.append(contentsOf: String(offset).utf8)
            out.append(UInt8(ascii: ","))
            offset += tensor.byteCount
            out.append(contentsOf: String(offset).utf8)
            out.append(contentsOf: "]}".utf8)
        }
        out.append(UInt8(ascii: "}"))
        while (out.count - 8) % 8 != 0 { out.append(0x20) }
        withUnsafeBytes(of: UInt64(out.count - 8).littleEndian) { length in
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: length[...])) }
        }
        return out
    }

    /// Appends `text` as a JSON string. Names here are schema field names and fixed
    /// suffixes; escaping covers the rest anyway.
    private static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case ..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 15))
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
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

