/// Moves a non-Sendable value to another thread that becomes its only user.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Any error as the `cause` of an `MBDataError` (which must be Sendable).
extension UncheckedSendable: Error, CustomStringConvertible where Value == any Error {
    var description: String { "\(value)" }
}
