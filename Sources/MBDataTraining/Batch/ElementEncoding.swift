/// Conversion of parsed numbers into the dtypes of the schema, refusing anything lossy
/// that the user did not write (integer overflow, a fraction in an integer field, a float
/// beyond the dtype's range).
package enum ElementEncoding {
    /// A number as read from text or from an array, before it meets the schema.
    package enum Number {
        case integer(Int64)
        case real(Double)

        package var text: String {
            switch self {
            case .integer(let i): String(i)
            case .real(let d): d.description
            }
        }
    }

    /// The value as an integer of `dtype`, or an error message.
    package static func integer(_ number: Number, as dtype: DType) throws -> Int64 {
        let value: Int64
        switch number {
        case .integer(let i):
            value = i
        case .real(let d):
            guard d.isFinite, d.rounded(.towardZero) == d, let exact = Int64(exactly: d) else {
                throw mismatch(dtype, number)
            }
            value = exact
        }
        guard let range = dtype.integerRange, range.contains(value) else {
            throw mismatch(dtype, number)
        }
        return value
    }

    /// The value rounded to the precision of the float `dtype` (so a float16 scalar stored as
    /// REAL holds exactly what a float16 can), or an error when out of range.
    ///
    /// NaN and ±infinity pass: a parser produces them only from an explicit token (CSV `nan`,
    /// `inf`; JSON `NaN`, `Infinity`) or a stored float (NPY); a finite literal too large for
    /// float64 is refused by the scanner, one too large for `dtype` here.
    package static func real(_ number: Number, as dtype: DType) throws -> Double {
        let value: Double
        switch number {
        case .integer(let i): value = Double(i)
        case .real(let d): value = d
        }
        guard let limit = dtype.floatMaxMagnitude else { throw mismatch(dtype, number) }
        if value.isFinite && abs(value) > limit { throw mismatch(dtype, number) }
        switch dtype {
        case .float16: return Double(Float(Float16(Float(value))))
        case .bfloat16: return Double(BFloat16.decode(BFloat16.encode(Float(value))))
        case .float32: return Double(Float(value))
        default: return value
        }
    }

    /// A scalar field's stored value.
    package static func scalarValue(_ number: Number, as dtype: DType) throws -> SampleValue {
        dtype.isFloat ? .real(try real(number, as: dtype)) : .integer(try integer(number, as: dtype))
    }

    /// Appends one element of `dtype`, little-endian.
    @inline(__always)
    package static func append(_ number: Number, as dtype: DType, to out: inout [UInt8]) throws {
        switch dtype {
        case .uint8, .bool:
            out.append(UInt8(truncatingIfNeeded: try integer(number, as: dtype)))
        case .int8:
            out.append(UInt8(bitPattern: Int8(try integer(number, as: dtype))))
        case .int16:
            appendLittleEndian(UInt16(bitPattern: Int16(try integer(number, as: dtype))), to: &out)
        case .int32:
            appendLittleEndian(UInt32(bitPattern: Int32(try integer(number, as: dtype))), to: &out)
        case .int64:
            appendLittleEndian(UInt64(bitPattern: try integer(number, as: dtype)), to: &out)
        case .float16:
            appendLittleEndian(Float16(Float(try real(number, as: dtype))).bitPattern, to: &out)
        case .bfloat16:
            appendLittleEndian(BFloat16.encode(Float(try real(number, as: dtype))), to: &out)
        case .float32:
            appendLittleEndian(Float(try real(number, as: dtype)).bitPattern, to: &out)
        case .float64:
            appendLittleEndian(try real(number, as: dtype).bitPattern, to: &out)
        case .bytes, .string:
            throw MBDataError(.schemaMismatch, "expected \(dtype.rawValue), got the number \(number.text)")
        }
    }

    @inline(__always)
    package static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// The little-endian UInt64 at `offset` of `bytes` (the caller checked the bounds).
    package static func littleEndianU64<C: RandomAccessCollection>(_ bytes: C, at offset: Int) -> UInt64 where C.Element == UInt8, C.Index == Int {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[bytes.startIndex + offset + $1]) << (8 * UInt64($1)) }
    }

    /// The little-endian UInt32 at `offset` of `bytes` (the caller checked the bounds).
    package static func littleEndianU32<C: RandomAccessCollection>(_ bytes: C, at offset: Int) -> UInt32 where C.Element == UInt8, C.Index == Int {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[bytes.startIndex + offset + $1]) << (8 * UInt32($1)) }
    }

    /// Reads element `index` of a little-endian buffer of `dtype` as a number.
    package static func element(_ raw: UnsafeRawBufferPointer, at index: Int, dtype: DType) -> Number {
        switch dtype {
        case .uint8, .bool: .integer(Int64(raw[index]))
        case .int8: .integer(Int64(Int8(bitPattern: raw[index])))
        case .int16: .integer(Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: index * 2, as: Int16.self))))
        case .int32: .integer(Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))))
        case .int64: .integer(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: Int64.self)))
        case .float16:
            .real(Double(Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))))))
        case .bfloat16:
            .real(Double(BFloat16.decode(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))))
        case .float32:
            .real(Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))))
        case .float64:
            .real(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))))
        case .bytes, .string: .integer(0)
        }
    }

    package static func mismatch(_ dtype: DType, _ number: Number) -> MBDataError {
        mismatch(dtype, text: number.text)
    }

    /// "expected <dtype and its range>, got <text>".
    package static func mismatch(_ dtype: DType, text: String) -> MBDataError {
        let expectation: String
        if let range = dtype.integerRange {
            expectation = dtype == .bool ? "bool (0 or 1)" : "\(dtype.rawValue) in \(range.lowerBound)...\(range.upperBound)"
        } else if let limit = dtype.floatMaxMagnitude {
            expectation = "\(dtype.rawValue) within ±\(limit)"
        } else {
            expectation = dtype.rawValue
        }
        return MBDataError(.schemaMismatch, "expected \(expectation), got \(text)")
    }
}

/// The bfloat16 encoding: the upper half of a float32, rounded to nearest even.
package enum BFloat16 {
    package static func encode(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    package static func decode(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
