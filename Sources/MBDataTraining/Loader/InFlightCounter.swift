import Synchronization

/// The trainer calls a loader has running, shared by the loader and the calls' tasks.
package final class InFlightCounter: Sendable {
    private let count = Mutex(0)

    package init() {}

    /// A call started; returns the calls running now, itself included.
    package func start() -> Int { count.withLock { $0 += 1; return $0 } }

    /// A call returned (or threw).
    package func end() { count.withLock { $0 -= 1 } }

    package var value: Int { count.withLock { $0 } }
}
