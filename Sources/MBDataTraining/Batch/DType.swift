/// The element type of a schema field.
public enum DType: String, CaseIterable, Codable, Sendable {
    case uint8, int8, int16, int32, int64
    case float16, bfloat16, float32, float64
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

    public var isInteger: Bool {
        switch self {
        case .uint8, .int8, .int16, .int32, .int64: true
        default: false
        }
    }

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
