/// Reads the header of a safetensors buffer: each tensor's dtype, shape and byte range.
///
/// Every number of the header is untrusted and checked before use, as the reference
/// implementation checks it: the header length fits the buffer, each tensor's
/// `data_offsets` are `0 ≤ begin ≤ end` within the data, its byte range equals
/// `product(shape) × element size` (computed without overflow), and the tensors tile the
/// data exactly — no gap, no overlap, nothing after the last one. A malformed buffer throws
/// `MBDataError` (`.corruptData`); this initializer is the fuzz target's entry point.
package struct SafetensorsReader: Sendable {
    package struct TensorInfo: Sendable, Hashable {
        package var dtype: String
        package var shape: [Int]
        /// Byte range within the whole buffer (header included).
        package var range: Range<Int>
        /// The product of `shape` (1 for a scalar).
        package var elementCount: Int { shape.reduce(1, *) }
    }

    package let tensors: [String: TensorInfo]
    /// The names in header order.
    package let names: [String]
    package let metadata: [String: String]

    /// Bytes per element of each safetensors dtype.
    package static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
        "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
        "U32": 4, "I32": 4, "F32": 4,
        "U64": 8, "I64": 8, "F64": 8,
    ]

    package init(_ buffer: [UInt8]) throws {
        func refuse(_ message: String) -> MBDataError { MBDataError(.corruptData, "safetensors: " + message) }
        guard buffer.count >= 8 else { throw refuse("buffer of \(buffer.count) bytes is shorter than its 8-byte header length") }
        let declared = ElementEncoding.littleEndianU64(buffer, at: 0)
        guard declared >= 2, declared <= UInt64(buffer.count - 8) else {
            throw refuse("header length \(declared) does not fit the \(buffer.count)-byte buffer")
        }
        let dataStart = 8 + Int(declared)
        let dataLength = buffer.count - dataStart
        let header: ParsedJSON
        do {
            header = try ParsedJSON.parse(Array(buffer[8..<dataStart]))
        } catch let error as MBDataError {
            throw refuse("header is not JSON: \(error.message)")
        }
        guard case .object(let members) = header else { throw refuse("header is not a JSON object") }
        var tensors: [String: TensorInfo] = [:]
        var names: [String] = []
        var metadata: [String: String]?
        var ranges: [(begin: Int, end: Int, name: String)] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard metadata == nil, case .object(let pairs) = value else { throw refuse("__metadata__ is not one object of strings") }
                var strings: [String: String] = [:]
                for (key, text) in pairs {
                    guard case .string(let s) = text, strings.updateValue(s, forKey: key) == nil else {
                        throw refuse("__metadata__ is not one object of strings")
                    }
                }
                metadata = strings
                continue
            }
            let quoted = "\"\(name.prefix(64))\""
            guard tensors[name] == nil else { throw refuse("tensor \(quoted) appears twice") }
            guard case .string(let dtype)? = value["dtype"], let elementSize = Self.elementSizes[dtype] else {
                throw refuse("tensor \(quoted) has no known dtype")
            }
            guard case .array(let shapeValues)? = value["shape"] else { throw refuse("tensor \(quoted) has no shape") }
            var shape: [Int] = []
            var bytes = elementSize
            for dimension in shapeValues {
                guard case .number(.integer(let n)) = dimension, n >= 0, n <= Int64(dataLength) else {
                    throw refuse("tensor \(quoted) has a dimension that is not an integer in 0…\(dataLength)")
                }
                // Saturates: a product past Int.max cannot fit the data either (and a later
                // zero dimension still makes it 0, as it should).
                bytes = CheckedSize.product(bytes, Int(n)) ?? Int.max
                shape.append(Int(n))
            }
            guard case .array(let offsets)? = value["data_offsets"], offsets.count == 2,
                case .number(.integer(let begin)) = offsets[0], case .number(.integer(let end)) = offsets[1],
                begin >= 0, begin <= end, end <= Int64(dataLength)
            else {
                throw refuse("tensor \(quoted) has data_offsets that are not 0 ≤ begin ≤ end ≤ \(dataLength)")
            }
            guard Int(end - begin) == bytes else {
                throw refuse("tensor \(quoted) \(dtype) \(shape) needs \(bytes == Int.max ? "more than \(Int.max)" : String(bytes)) bytes, its data_offsets hold \(end - begin)")
            }
            tensors[name] = TensorInfo(dtype: dtype, shape: shape, range: (dataStart + Int(begin))..<(dataStart + Int(end)))
            names.append(name)
            ranges.append((Int(begin), Int(end), name))
        }
        var next = 0
        for range in ranges.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard range.begin == next else {
                throw refuse("tensor \"\(range.name.prefix(64))\" starts at \(range.begin), not where the data before it ends (\(next)): a gap or an overlap")
            }
            next = range.end
        }
        guard next == dataLength else { throw refuse("the tensors end at \(next) of \(dataLength) data bytes") }
        self.tensors = tensors
        self.names = names
        self.metadata = metadata ?? [:]
    }

    /// An int64 tensor's values.
    package func int64Values(_ name: String, in buffer: [UInt8]) throws -> [Int64] {
        guard let info = tensors[name], info.dtype == "I64", info.range.upperBound <= buffer.count else {
            throw MBDataError(.corruptData, "batch has no int64 tensor \"\(name)\"")
        }
        return stride(from: info.range.lowerBound, to: info.range.upperBound, by: 8).map { offset in
            Int64(bitPattern: ElementEncoding.littleEndianU64(buffer, at: offset))
        }
    }
}
