/// Reads the header of a safetensors buffer: each tensor's dtype, shape and byte range,
/// checked to lie inside the buffer.
public struct SafetensorsReader: Sendable {
    public struct TensorInfo: Sendable, Hashable {
        public var dtype: String
        public var shape: [Int]
        /// Byte range within the whole buffer (header included).
        public var range: Range<Int>
    }

    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]

    public init(_ buffer: [UInt8]) throws {
        guard buffer.count >= 8 else { throw MBDataError(.malformedRecord, "safetensors buffer shorter than its 8-byte header length") }
        let headerLength = (0..<8).reduce(0) { $0 | Int(buffer[$1]) << (8 * $1) }
        guard headerLength >= 2, headerLength <= buffer.count - 8 else {
            throw MBDataError(.malformedRecord, "safetensors header length \(headerLength) does not fit the \(buffer.count)-byte buffer")
        }
        let header = try JSONValue.parse(Array(buffer[8..<(8 + headerLength)]))
        guard case .object(let members) = header else { throw MBDataError(.malformedRecord, "safetensors header is not a JSON object") }
        let dataStart = 8 + headerLength
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                if case .object(let pairs) = value {
                    for (key, text) in pairs { if case .string(let s) = text { metadata[key] = s } }
                }
                continue
            }
            guard case .string(let dtype)? = value["dtype"], case .array(let shapeValues)? = value["shape"],
                case .array(let offsets)? = value["data_offsets"], offsets.count == 2,
                case .number(.integer(let begin)) = offsets[0], case .number(.integer(let end)) = offsets[1], begin <= end,
                dataStart + Int(end) <= buffer.count
            else {
                throw MBDataError(.malformedRecord, "safetensors tensor \"\(name)\" has a bad dtype, shape or data_offsets")
            }
            let shape = try shapeValues.map { dim -> Int in
                guard case .number(.integer(let n)) = dim, n >= 0 else { throw MBDataError(.malformedRecord, "bad shape of \(name)") }
                return Int(n)
            }
            tensors[name] = TensorInfo(dtype: dtype, shape: shape, range: (dataStart + Int(begin))..<(dataStart + Int(end)))
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// An int64 tensor's values.
    public func int64Values(_ name: String, in buffer: [UInt8]) throws -> [Int64] {
        guard let info = tensors[name], info.dtype == "I64", info.range.count % 8 == 0 else {
            throw MBDataError(.malformedRecord, "batch has no int64 tensor \"\(name)\"")
        }
        return stride(from: info.range.lowerBound, to: info.range.upperBound, by: 8).map { offset in
            (0..<8).reduce(Int64(0)) { $0 | Int64(buffer[offset + $1]) << (8 * Int64($1)) }
        }
    }
}
