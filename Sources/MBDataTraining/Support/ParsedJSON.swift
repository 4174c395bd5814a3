/// A parsed JSON document, for small configuration files such as schemas.
package enum ParsedJSON {
    case null
    case bool(Bool)
    case number(ElementEncoding.Number)
    case string(String)
    case array([ParsedJSON])
    case object([(String, ParsedJSON)])

    package static func parse(_ bytes: [UInt8]) throws -> ParsedJSON {
        try bytes.withUnsafeBytes { raw in
            var scanner = JSONScanner(raw)
            let value = try parseValue(&scanner, depth: 0)
            scanner.skipWhitespace()
            guard scanner.isAtEnd else { throw scanner.error("end of document") }
            return value
        }
    }

    private static func parseValue(_ scanner: inout JSONScanner, depth: Int) throws -> ParsedJSON {
        guard depth < 64 else { throw scanner.error("less nesting") }
        scanner.skipWhitespace()
        switch scanner.current ?? 0 {
        case UInt8(ascii: "{"):
            scanner.position += 1
            var members: [(String, ParsedJSON)] = []
            if scanner.consume(UInt8(ascii: "}")) { return .object(members) }
            repeat {
                let key = try scanner.string()
                try scanner.expect(UInt8(ascii: ":"), "':'")
                members.append((key, try parseValue(&scanner, depth: depth + 1)))
            } while scanner.consume(UInt8(ascii: ","))
            try scanner.expect(UInt8(ascii: "}"), "',' or '}'")
            return .object(members)
        case UInt8(ascii: "["):
            scanner.position += 1
            var elements: [ParsedJSON] = []
            if scanner.consume(UInt8(ascii: "]")) { return .array(elements) }
            repeat {
                elements.append(try parseValue(&scanner, depth: depth + 1))
            } while scanner.consume(UInt8(ascii: ","))
            try scanner.expect(UInt8(ascii: "]"), "',' or ']'")
            return .array(elements)
        case UInt8(ascii: "\""):
            return .string(try scanner.string())
        case UInt8(ascii: "t") where scanner.literal("true"): return .bool(true)
        case UInt8(ascii: "f") where scanner.literal("false"): return .bool(false)
        case UInt8(ascii: "n") where scanner.literal("null"): return .null
        default:
            return .number(try scanner.number())
        }
    }

    package subscript(key: String) -> ParsedJSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    package var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
