/// A cursor over the bytes of one JSON text with the lexical pieces the parsers need.
/// Errors say what was expected and what was found, at a 1-based column.
package struct JSONScanner {
    package let bytes: UnsafeRawBufferPointer
    package var position = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var isAtEnd: Bool { position >= bytes.count }

    @inline(__always) package var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    @inline(__always) package mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    package func error(_ expected: String) -> MBDataError {
        MBDataError(.malformedRecord, "invalid JSON at column \(position + 1): expected \(expected), got \(foundDescription)")
    }

    package var foundDescription: String {
        guard let c = current else { return "end of line" }
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16))"
    }

    @inline(__always) package mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard current == byte else { throw error(what) }
        position += 1
    }

    /// Consumes `byte` if it is next (after whitespace).
    @inline(__always) package mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if current == byte {
            position += 1
            return true
        }
        return false
    }

    package mutating func expectEnd() throws {
        skipWhitespace()
        guard isAtEnd else { throw error("end of line after the object") }
    }

    package mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        for i in 0..<count where bytes[position + i] != word.utf8Start[i] { return false }
        position += count
        return true
    }

    /// A JSON number; integers that fit are kept exact. A literal beyond float64's range
    /// (`1e400`) is refused, never rounded to infinity: as out of range for `dtype` when given.
    package mutating func number(for dtype: DType? = nil) throws -> ElementEncoding.Number {
        skipWhitespace()
        guard let base = bytes.baseAddress else { throw error("a number") }
        let end = bytes.count
        let start = position
        var i = position
        @inline(__always) func byte(_ i: Int) -> UInt8 { base.load(fromByteOffset: i, as: UInt8.self) }
        var negative = false
        if i < end && byte(i) == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var magnitude: UInt64 = 0
        let digitsStart = i
        while i < end {
            let digit = byte(i) &- 0x30
            if digit > 9 { break }
            magnitude = magnitude &* 10 &+ UInt64(digit)
            i += 1
        }
        let digits = i - digitsStart
        guard digits > 0 else {
            position = start
            throw error("a number")
        }
        var isInteger = true
        if i < end && byte(i) == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            let fractionStart = i
            while i < end, byte(i) &- 0x30 <= 9 { i += 1 }
            guard i > fractionStart else {
                position = i
                throw error("digits after '.'")
            }
        }
        if i < end && (byte(i) | 0x20) == UInt8(ascii: "e") {
            isInteger = false
            i += 1
            if i < end && (byte(i) == UInt8(ascii: "+") || byte(i) == UInt8(ascii: "-")) { i += 1 }
            let exponentStart = i
            while i < end, byte(i) &- 0x30 <= 9 { i += 1 }
            guard i > exponentStart else {
                position = i
                throw error("exponent digits")
            }
        }
        position = i
        // Up to 18 digits cannot overflow; longer integers take the exact, checked path.
        if isInteger && digits <= 18 {
            return .integer(negative ? -Int64(magnitude) : Int64(magnitude))
        }
        if isInteger, let exact = Int64(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)) {
            return .integer(exact)
        }
        let literal = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
        let value = Self.parseDouble(literal)
        guard value.isFinite else {
            position = start
            let text = String(decoding: literal.prefix(40), as: UTF8.self) + (literal.count > 40 ? "…" : "")
            if let dtype { throw ElementEncoding.mismatch(dtype, text: text) }
            throw MBDataError(.schemaMismatch, "number \(text) is beyond the range of float64 (±\(Double.greatestFiniteMagnitude))")
        }
        return .real(value)
    }

    /// `strtod` over a small copy, so the text needs no terminator.
    package static func parseDouble(_ text: UnsafeRawBufferPointer) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: text.count + 1) { buffer in
            for i in 0..<text.count { buffer[i] = CChar(bitPattern: text[i]) }
            buffer[text.count] = 0
            return strtod(buffer.baseAddress!, nil)
        }
    }

    /// A JSON string's raw bytes between the quotes, with escapes decoded and UTF-8 checked.
    package mutating func stringBytes() throws -> [UInt8] {
        try expect(UInt8(ascii: "\""), "a string")
        var out: [UInt8] = []
        var runStart = position
        while true {
            guard let c = current else { throw error("closing '\"'") }
            if c == UInt8(ascii: "\"") {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
                position += 1
                break
            }
            if c < 0x20 { throw error("no control character inside a string") }
            if c == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
                position += 1
                try escape(into: &out)
                runStart = position
                continue
            }
            position += 1
        }
        return out
    }

    /// A JSON string as text; invalid UTF-8 is refused.
    package mutating func string() throws -> String {
        let start = position
        let raw = try stringBytes()
        guard let text = String(validating: raw, as: UTF8.self) else {
            position = start
            throw MBDataError(.malformedRecord, "string at column \(start + 1) is not valid UTF-8")
        }
        return text
    }

    private mutating func escape(into out: inout [UInt8]) throws {
        guard let c = current else { throw error("an escape character") }
        position += 1
        switch c {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard literal("\\u") else { throw error("a low surrogate after a high surrogate") }
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw error("a low surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw error("a valid unicode escape") }
            out.append(contentsOf: Array(String(Character(unicode)).utf8))
        default:
            position -= 1
            throw error("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
        }
    }

    private mutating func hex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let c = current, let digit = Self.hexValue(c) else { throw error("4 hex digits") }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    /// A short name for the kind of the next value, for "expected X, got Y" messages.
    package mutating func peekKind() -> String {
        skipWhitespace()
        switch current ?? 0 {
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case 0 where isAtEnd: return "end of line"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return "a number"
        default: return foundDescription
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
