/// Arithmetic on sizes, counts and offsets read from untrusted bytes (a header, a zip
/// directory, a command line): every operation returns nil where plain arithmetic would
/// trap, so a parser turns an absurd value into an error that names it.
package enum CheckedSize {
    package static func sum(_ a: Int, _ b: Int) -> Int? {
        let (value, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : value
    }

    package static func product(_ a: Int, _ b: Int) -> Int? {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : value
    }

    /// The product of all values (1 for none), or nil on overflow.
    package static func product(_ values: some Sequence<Int>) -> Int? {
        var total = 1
        for value in values {
            guard let next = product(total, value) else { return nil }
            total = next
        }
        return total
    }

    /// An unsigned 64-bit field as an `Int`, or nil when it is 2^63 or more.
    package static func int(_ value: UInt64) -> Int? { Int(exactly: value) }

    /// True when `[offset, offset + length)` lies within `[0, limit)`.
    package static func range(offset: Int, length: Int, within limit: Int) -> Bool {
        guard offset >= 0, length >= 0, let end = sum(offset, length) else { return false }
        return end <= limit
    }
}
