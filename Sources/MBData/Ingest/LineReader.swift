#if canImport(Glibc)
    import Glibc
#endif

/// Splits a byte stream into lines (`\n`, with a trailing `\r` removed), numbering them from 1.
/// A line is handed out as a buffer that is valid until the next call.
struct LineReader {
    private var stream: any ByteStream
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var atEnd = false
    private(set) var lineNumber = 0
    /// Refuse lines longer than this (`.limitExceeded`) rather than grow without bound:
    /// the buffer never exceeds it by more than the line break.
    let maxLineLength: Int
    let source: String

    /// `initialCapacity` (default 1 MiB) is where the buffer starts; it doubles up to the limit.
    init(_ stream: any ByteStream, source: String, maxLineLength: Int = RecordLimits.defaultMaxRecordBytes, initialCapacity: Int = 1 << 20) {
        self.stream = stream
        self.source = source
        self.maxLineLength = max(1, maxLineLength)
        buffer = [UInt8](repeating: 0, count: max(1, min(initialCapacity, self.maxLineLength + 2)))
    }

    /// Calls `body` with the next line, or returns nil at the end of the stream.
    mutating func next<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        while true {
            if let newline = findNewline() {
                lineNumber += 1
                var lineEnd = newline
                if lineEnd > start && buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                let lineStart = start
                start = newline + 1
                return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[lineStart..<lineEnd])) }
            }
            if atEnd {
                guard start < end else { return nil }
                lineNumber += 1
                var lineEnd = end
                if buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                let lineStart = start
                start = end
                return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[lineStart..<lineEnd])) }
            }
            try refill()
        }
    }

    private func findNewline() -> Int? {
        guard end > start else { return nil }
        return buffer.withUnsafeBytes { raw -> Int? in
            guard let found = memchr(raw.baseAddress! + start, Int32(UInt8(ascii: "\n")), end - start) else { return nil }
            return UnsafeRawPointer(found) - raw.baseAddress!
        }
    }

    private mutating func refill() throws {
        if start > 0 {
            buffer.withUnsafeMutableBytes { raw in
                let count = end - start
                if count > 0 { raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: count) }
            }
            end -= start
            start = 0
        }
        if end == buffer.count {
            // Room for the longest allowed line, its `\r\n`, and no more.
            let largest = maxLineLength + 2
            guard buffer.count < largest else {
                throw RecordLimits.exceeded("a line longer than \(maxLineLength) bytes", limit: maxLineLength)
                    .located(source: source, location: "line \(lineNumber + 1)")
            }
            buffer.append(contentsOf: [UInt8](repeating: 0, count: min(buffer.count, largest - buffer.count)))
        }
        let n = try buffer.withUnsafeMutableBytes { raw in
            try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
        }
        if n == 0 { atEnd = true }
        end += n
    }
}
