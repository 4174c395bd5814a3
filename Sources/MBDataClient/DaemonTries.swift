import MBDataTraining

/// The tries of one operation (a request, a stream) over the daemons of an
/// ``HTTPTransport``: a daemon that fails — no connection, a reset, a timeout, a cut stream,
/// a `503` — hands the operation to the next at once; once every daemon failed in a round,
/// the next round waits a backoff. The operation gives up after the transport's `rounds`
/// rounds or `giveUpAfter`, whichever comes first, with an error naming every daemon tried.
struct DaemonTries {
    /// A stream that ended early: cut without an end message, or ended `draining`.
    struct StreamInterrupted: Error, CustomStringConvertible {
        var description: String
    }

    private let transport: HTTPTransport
    private let operation: String
    private let started = ContinuousClock.now
    private var inRound = 0
    /// Rounds that ended in failure so far (a round: every daemon tried once).
    private(set) var rounds = 0
    /// Each daemon tried, in the order first tried, and how it failed last.
    private var failures: [(daemon: String, cause: any Error & Sendable)] = []

    init(transport: HTTPTransport, operation: String) {
        self.transport = transport
        self.operation = operation
    }

    /// Records that `daemon` failed with `failure`, then returns when the operation should
    /// be tried again: at once on the next daemon with `move` while the round lasts, else
    /// after the backoff. `move` false (an answer asking to wait on the same daemon) ends
    /// the round here.
    ///
    /// - Throws: `MBDataError` with `.unavailable` naming every daemon tried when the
    ///   operation must give up; `CancellationError` when cancelled while waiting.
    mutating func failed(_ daemon: String, _ failure: any Error & Sendable, move: Bool = true) async throws {
        if let index = failures.firstIndex(where: { $0.daemon == daemon }) {
            failures[index].cause = failure
        } else {
            failures.append((daemon, failure))
        }
        if move {
            transport.failOver(from: daemon)
            inRound += 1
            if inRound < transport.bases.count { return }
        }
        inRound = 0
        let finished = rounds
        rounds += 1
        let wait = Duration.milliseconds(100 * min(finished + 1, 10))
        guard finished < transport.rounds, started.duration(to: .now) + wait <= transport.giveUpAfter else {
            throw giveUp(last: failure)
        }
        try await Task.sleep(for: wait)
    }

    private func giveUp(last: any Error & Sendable) -> MBDataError {
        let tried = failures.map { "\($0.daemon): \($0.cause)" }.joined(separator: "; ")
        let elapsed = started.duration(to: .now).components
        let tenths = elapsed.seconds * 10 + elapsed.attoseconds / 100_000_000_000_000_000
        return MBDataError(
            .unavailable,
            "gave up after \(rounds) rounds over \(transport.bases.count) daemon(s) in \(tenths / 10).\(tenths % 10) s; tried \(tried)",
            source: operation, cause: last)
    }
}
