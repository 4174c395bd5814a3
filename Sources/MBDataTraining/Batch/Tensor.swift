/// One tensor of a batch: a typed view over bytes the batch owns (no copy).
public struct Tensor: Sendable {
    /// The tensor's name in the batch: a field name, `name.offsets` / `name.lengths` for a
    /// variable-length field, `_id`, or `_valid`.
    public let name: String
    /// The element type (`bytes` and `string` fields arrive as `uint8` values plus offsets;
    /// ``Batch/strings(_:)`` and ``Batch/bytes(_:)`` decode them).
    public let dtype: DType
    /// The dimensions; the first is the batch's row count for per-row tensors.
    public let shape: [Int]
    private let storage: [UInt8]
    private let range: Range<Int>

    package init(name: String, dtype: DType, shape: [Int], storage: [UInt8], range: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.range = range
    }

    /// A tensor holding `bytes` (for transforms that build new tensors).
    public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.init(name: name, dtype: dtype, shape: shape, storage: bytes, range: 0..<bytes.count)
    }

    /// Bytes of the tensor's data.
    public var byteCount: Int { range.count }
    /// The product of ``shape`` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The raw little-endian bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// A copy of the raw little-endian bytes (``withUnsafeBytes(_:)`` reads them without copying).
    public var bytes: [UInt8] { Array(storage[range]) }

    /// Every element converted to Float (any numeric dtype).
    public func floats() -> [Float] { withUnsafeBytes { raw in (0..<elementCount).map { Float(Self.double(raw, $0, dtype)) } } }
    /// Every element converted to Double.
    public func doubles() -> [Double] { withUnsafeBytes { raw in (0..<elementCount).map { Self.double(raw, $0, dtype) } } }
    /// Every element as Int64 (floats truncated toward zero).
    public func int64s() -> [Int64] {
        withUnsafeBytes { raw in
            (0..<elementCount).map { index in
                switch ElementEncoding.element(raw, at: index, dtype: dtype) {
                case .integer(let i): i
                case .real(let d): Int64(d)
                }
            }
        }
    }

    private static func double(_ raw: UnsafeRawBufferPointer, _ index: Int, _ dtype: DType) -> Double {
        switch ElementEncoding.element(raw, at: index, dtype: dtype) {
        case .integer(let i): Double(i)
        case .real(let d): d
        }
    }

    package static func dtype(safetensorsName: String) -> DType? {
        switch safetensorsName {
        case "U8": .uint8
        case "I8": .int8
        case "I16": .int16
        case "I32": .int32
        case "I64": .int64
        case "F16": .float16
        case "BF16": .bfloat16
        case "F32": .float32
        case "F64": .float64
        case "BOOL": .bool
        default: nil
        }
    }
}
