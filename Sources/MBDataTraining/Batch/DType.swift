/// The element type of a schema field; the raw value is the name a schema document uses
/// (`"uint8"`, `"bfloat16"`, `"string"`…).
public enum DType: String, CaseIterable, Codable, Sendable {
    /// Integers: unsigned 8-bit and signed 8-, 16-, 32- and 64-bit.
    case uint8, int8, int16, int32, int64
    /// IEEE half, brain float (the upper half of a float32), single and double precision.
    ///
    /// Ingest refuses a value beyond the dtype's finite range; within it, values are rounded to
    /// the dtype's precision.
    case float16, bfloat16, float32, float64
    /// 0 or 1, one byte per element (safetensors `BOOL`).
    case bool
    /// A variable-length byte string (an encoded image, a serialized record…).
    case bytes
    /// A variable-length UTF-8 string.
    case string

    /// Bytes per element of a numeric dtype; `nil` for `bytes` and `string`.
    public var itemSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .int16, .float16, .bfloat16: 2
        case .int32, .float32: 4
        case .int64, .float64: 8
        case .bytes, .string: nil
        }
    }

    /// True for the integer dtypes (`uint8` … `int64`); false for `bool`, the floats,
    /// `bytes` and `string`.
    public var isInteger: Bool {
        switch self {
        case .uint8, .int8, .int16, .int32, .int64: true
        default: false
        }
    }

    /// True for `float16`, `bfloat16`, `float32` and `float64`.
    public var isFloat: Bool {
        switch self {
        case .float16, .bfloat16, .float32, .float64: true
        default: false
        }
    }

    /// `bytes` and `string`: stored as one variable-length value.
    public var isVariableLength: Bool { self == .bytes || self == .string }

    /// The inclusive range of an integer dtype.
    var integerRange: ClosedRange<Int64>? {
        switch self {
        case .uint8: 0...Int64(UInt8.max)
        case .int8: Int64(Int8.min)...Int64(Int8.max)
        case .int16: Int64(Int16.min)...Int64(Int16.max)
        case .int32: Int64(Int32.min)...Int64(Int32.max)
        case .int64: Int64.min...Int64.max
        case .bool: 0...1
        default: nil
        }
    }

    /// The largest finite magnitude of a float dtype.
    var floatMaxMagnitude: Double? {
        switch self {
        case .float16: 65504
        case .bfloat16: 3.3895313892515355e38
        case .float32: Double(Float.greatestFiniteMagnitude)
        case .float64: Double.greatestFiniteMagnitude
        default: nil
        }
    }
}
