/// The header of a `.npy` array (format versions 1–3): element type, order and shape.
struct NPYHeader: Equatable {
    enum Kind: Character { case bool = "b", signed = "i", unsigned = "u", float = "f", bytes = "S", unicode = "U" }

    var kind: Kind
    var itemSize: Int
    var bigEndian: Bool
    var fortranOrder: Bool
    var shape: [Int]
    var descr: String
    /// Bytes before the data: magic, version, header length, header text.
    var dataOffset: Int

    /// The sizes below are computed once, checked, by `parse`: a shape or item size whose
    /// byte count does not fit in an `Int` is refused there.
    private(set) var elementsPerRow = 1
    private(set) var rowByteCount = 0
    private(set) var dataByteCount = 0

    var rowCount: Int { shape.first ?? 1 }
    var shapeDescription: String { "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")") }

    static func read(from stream: inout some ByteStream, source: String) throws -> NPYHeader {
        let prefix = try stream.readExactly(8, source: source, what: "NPY header")
        guard prefix[0..<6] == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] else {
            throw MBDataError(.malformedRecord, "not an NPY file: missing the \\x93NUMPY magic", source: source)
        }
        let major = prefix[6]
        let lengthBytes: Int
        switch major {
        case 1: lengthBytes = 2
        case 2, 3: lengthBytes = 4
        default:
            throw MBDataError(.malformedRecord, "unsupported NPY format version \(major).\(prefix[7]); expected 1, 2 or 3", source: source)
        }
        let lengthField = try stream.readExactly(lengthBytes, source: source, what: "NPY header length")
        let headerLength = lengthField.reversed().reduce(0) { $0 << 8 | Int($1) }  // at most 2^32 - 1: no overflow
        guard headerLength < 1 << 20 else {
            throw MBDataError(.malformedRecord, "NPY header length \(headerLength) is implausible", source: source)
        }
        let text = String(decoding: try stream.readExactly(headerLength, source: source, what: "NPY header"), as: UTF8.self)
        var header = try parse(dictionary: text, source: source)
        header.dataOffset = 8 + lengthBytes + headerLength
        return header
    }

    /// Parses the Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
    static func parse(dictionary text: String, source: String) throws -> NPYHeader {
        func bad(_ message: String) -> MBDataError {
            MBDataError(.malformedRecord, "malformed NPY header (\(message)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))", source: source)
        }
        func value(after key: String) throws -> Substring {
            guard let keyRange = text.range(of: "'\(key)'") else { throw bad("no '\(key)'") }
            var rest = text[keyRange.upperBound...].drop { $0 == " " }
            guard rest.first == ":" else { throw bad("no ':' after '\(key)'") }
            rest = rest.dropFirst().drop { $0 == " " }
            return rest
        }
        let descrText = try value(after: "descr")
        guard descrText.first == "'" || descrText.first == "\"" else {
            throw MBDataError(
                .schemaMismatch, "structured NPY dtypes are not supported; save one array per field", source: source)
        }
        let quote = descrText.first!
        guard let descrEnd = descrText.dropFirst().firstIndex(of: quote) else { throw bad("unterminated descr") }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<descrEnd])

        let fortranText = try value(after: "fortran_order")
        let fortran: Bool
        if fortranText.hasPrefix("True") { fortran = true } else if fortranText.hasPrefix("False") { fortran = false } else {
            throw bad("fortran_order is neither True nor False")
        }

        let shapeText = try value(after: "shape")
        guard shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else { throw bad("shape is not a tuple") }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let dim = Int(trimmed.hasSuffix("L") ? String(trimmed.dropLast()) : trimmed), dim >= 0 else {
                throw bad("shape dimension \(trimmed)")
            }
            shape.append(dim)
        }

        guard descr.count >= 2 else { throw bad("descr \(descr)") }
        var chars = Array(descr)
        var bigEndian = false
        if "<>|=".contains(chars[0]) {
            bigEndian = chars[0] == ">"
            chars.removeFirst()
        }
        guard let kind = Kind(rawValue: chars[0]), let count = Int(String(chars.dropFirst())), count > 0 else {
            throw MBDataError(
                .schemaMismatch,
                "NPY dtype '\(descr)' is not supported; expected bool, (u)int8–64, float16/32/64, S (bytes) or U (text)",
                source: source)
        }
        guard let itemSize = kind == .unicode ? CheckedSize.product(count, 4) : count else {
            throw bad("item size of '\(descr)' is out of range")
        }
        switch kind {
        case .bool where itemSize != 1, .float where ![2, 4, 8].contains(itemSize),
            .signed where ![1, 2, 4, 8].contains(itemSize), .unsigned where ![1, 2, 4, 8].contains(itemSize):
            throw MBDataError(.schemaMismatch, "NPY dtype '\(descr)' is not supported", source: source)
        default: break
        }
        var header = NPYHeader(
            kind: kind, itemSize: itemSize, bigEndian: bigEndian && itemSize > 1 && kind != .bytes, fortranOrder: fortran,
            shape: shape, descr: descr, dataOffset: 0)
        guard let elements = CheckedSize.product(shape.dropFirst()),
            let rowBytes = CheckedSize.product(elements, itemSize),
            let dataBytes = CheckedSize.product(header.rowCount, rowBytes)
        else {
            throw MBDataError(
                .malformedRecord,
                "NPY header declares \(header.shapeDescription) elements of \(itemSize) bytes ('\(descr)'): more bytes than any file can hold",
                source: source)
        }
        header.elementsPerRow = elements
        header.rowByteCount = rowBytes
        header.dataByteCount = dataBytes
        return header
    }

    /// The header at the start of `bytes` (fuzzing and tests): the same checks as a file.
    package static func parse(bytes: [UInt8], source: String = "<memory>") throws -> NPYHeader {
        var stream = MemoryByteStream(bytes)
        return try read(from: &stream, source: source)
    }
}

import Foundation
