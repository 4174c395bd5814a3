import Synchronization

/// A request to end a run early, shared by a loader and the contexts it hands out.
package final class StopSignal: Sendable {
    private let requested = Mutex(false)

    package init() {}

    /// Asks the run to stop; it is honoured at the next point where a batch would start.
    package func request() { requested.withLock { $0 = true } }

    package var isRequested: Bool { requested.withLock { $0 } }

    /// Takes the request back (a run that honoured it, as it returns).
    package func clear() { requested.withLock { $0 = false } }
}
