import NIOCore
import Synchronization
import PostgresNIO
import _ConnectionPoolModule

/// How ``PostgresStateStore`` tells the failures of PostgreSQL apart: those of the database
/// or the way to it, which become `.storage` errors, and among them the transient ones a
/// retry may get past (the daemon answers them 503 `state_unavailable`).
enum PostgresFailure {
    /// No answer within the store's operation timeout: the database is down, unreachable or
    /// every connection is busy.
    struct TimedOut: Error, CustomStringConvertible {
        var timeout: Duration
        var description: String { "no answer from PostgreSQL within \(timeout)" }
    }

    /// SQLSTATE classes and codes after which the same transaction may succeed: connection
    /// exceptions (08), insufficient resources (53), an administrator's or crash shutdown
    /// (57P01–57P03), a serialization failure or deadlock (40001, 40P01).
    private static let transientClasses: Set<Substring> = ["08", "53"]
    private static let transientStates: Set<String> = ["57P01", "57P02", "57P03", "40001", "40P01"]

    /// The driver's codes of a connection that could not be made or was lost.
    private static let connectionCodes: Set<PSQLError.Code> = [
        .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
    ]

    /// `body`, or ``TimedOut`` when it takes longer than `timeout`: the answer comes by the
    /// deadline even when `body` does not end. `body` is cancelled then and finishes on its
    /// own — a wait for a pooled connection ends at once, a query already sent when the
    /// database answers or the connection drops — so a driver that does not hear the
    /// cancellation holds a connection, never the request (nor a daemon's shutdown, which
    /// waits for its requests). Cancelling the caller cancels `body` and ends the wait.
    static func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let outcome = Outcome<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.start(continuation)
                // Unstructured on purpose: a task group would wait for `body` past the deadline.
                let work = Task {
                    do { outcome.finish(.success(try await body())) } catch { outcome.finish(.failure(error)) }
                }
                let timer = Task {
                    try await Task.sleep(for: timeout)
                    outcome.finish(.failure(TimedOut(timeout: timeout)))
                }
                outcome.attach(work: work, timer: timer)
            }
        } onCancel: {
            outcome.finish(.failure(CancellationError()))
        }
    }

    /// The first result of a deadline's race, handed to its waiter once.
    private final class Outcome<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var early: Result<T, any Error>?
            var work: Task<Void, Never>?
            var timer: Task<Void, any Error>?
            var done = false
        }
        private let state = Mutex(State())

        func start(_ continuation: CheckedContinuation<T, any Error>) {
            let early = state.withLock { state -> Result<T, any Error>? in
                guard let early = state.early else {
                    state.continuation = continuation
                    return nil
                }
                return early
            }
            if let early { continuation.resume(with: early) }
        }

        /// Keeps the race's two tasks; when the race is already over, the timer is cancelled,
        /// and `work` too unless it is what ended it.
        func attach(work: Task<Void, Never>, timer: Task<Void, any Error>) {
            let (done, succeeded) = state.withLock { state -> (Bool, Bool) in
                state.work = work
                state.timer = timer
                guard state.done else { return (false, false) }
                if case .success = state.early { return (true, true) }
                return (true, false)
            }
            guard done else { return }
            timer.cancel()
            if !succeeded { work.cancel() }
        }

        /// Hands the first result to the waiter (or keeps it for ``start(_:)``), stops the
        /// timer, and cancels the work when the result is not the work's success.
        func finish(_ result: Result<T, any Error>) {
            let ended = state.withLock { state -> (CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, any Error>?)? in
                guard !state.done else { return nil }
                state.done = true
                state.early = result
                let continuation = state.continuation
                state.continuation = nil
                return (continuation, state.work, state.timer)
            }
            guard let (continuation, work, timer) = ended else { return }
            continuation?.resume(with: result)
            timer?.cancel()
            if case .failure = result { work?.cancel() }
        }
    }

    /// The error inside a `PostgresTransactionError`: that of `BEGIN`, of the transaction's
    /// body, or of `COMMIT`.
    static func unwrapped(_ error: any Error) -> any Error {
        guard let transaction = error as? PostgresTransactionError else { return error }
        return transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? error
    }

    /// Whether `error` came from the database or the way to it, rather than from the
    /// store's own checks.
    static func isDatabaseError(_ error: any Error) -> Bool {
        error is PSQLError || error is ConnectionPoolError || error is TimedOut || error is IOError || error is ChannelError
    }

    /// Whether `error` is a failure of the database or the way to it after which a retry
    /// may succeed.
    static func isTransient(_ error: any Error) -> Bool {
        switch error {
        case let error as PSQLError:
            if connectionCodes.contains(error.code) { return true }
            guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
            return transientClasses.contains(state.prefix(2)) || transientStates.contains(state)
        case is ConnectionPoolError, is TimedOut, is IOError, is ChannelError: return true
        default: return false
        }
    }

    /// What a log or an error message says about `error`: the driver's code, and the
    /// server's SQLSTATE and message when the server answered.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        guard let info = error.serverInfo else { return "\(error.code)" }
        return "\(info[.sqlState] ?? "?") \(info[.message] ?? "")"
    }
}
