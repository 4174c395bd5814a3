import Synchronization

/// Group commit: requests submitted while a group is being written wait together and are
/// written as the next group, by one call of `write` (one transaction, one COMMIT), so
/// concurrent committers share the fixed cost of a transaction.
///
/// It has no task of its own. The first caller that finds no group being written leads: it
/// writes its own request with everything waiting, resumes the callers of that group with
/// their outcomes, and hands the lead to a caller that arrived meanwhile, if any. Every
/// caller, the leader included, returns only after `write` returned for its group, cancelled
/// or not: others wait on the same write, so `write` should run to its end under
/// cancellation too (``Dataset/writeToCompletion(_:path:_:)``).
final class GroupCommitQueue<Request: Sendable, Response: Sendable>: Sendable {
    /// One request's outcome in a group.
    typealias Outcome = Result<Response, any Error>

    /// Writes one group, returning one outcome per request, in order.
    private let write: @Sendable ([Request]) async -> [Outcome]
    private let state = Mutex(State())

    private struct State {
        var waiting: [Waiter] = []
        var writing = false
    }

    private struct Waiter {
        let request: Request
        let continuation: CheckedContinuation<Turn, Never>
    }

    /// What a waiting caller is resumed with.
    private enum Turn: Sendable {
        case lead
        case finished(Outcome)
    }

    /// `write` gets each group, its requests in the order they came; it must return as many
    /// outcomes as it got requests.
    init(write: @escaping @Sendable ([Request]) async -> [Outcome]) {
        self.write = write
    }

    /// Callers waiting for the next group.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Submits `request` and returns its outcome once its group was written.
    func submit(_ request: Request) async throws -> Response {
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let leads = state.withLock { state in
                guard state.writing else {
                    state.writing = true
                    return true
                }
                state.waiting.append(Waiter(request: request, continuation: continuation))
                return false
            }
            if leads { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .finished(let outcome): return try outcome.get()
        case .lead: return try await lead(with: request).get()
        }
    }

    /// Writes `own` with every waiting request, resumes their callers, then passes the lead on.
    private func lead(with own: Request) async -> Outcome {
        let others = state.withLock { state in
            defer { state.waiting = [] }
            return state.waiting
        }
        var outcomes = await write([own] + others.map(\.request))
        precondition(outcomes.count == others.count + 1, "a group write returned \(outcomes.count) outcomes for \(others.count + 1) requests")
        let ownOutcome = outcomes.removeFirst()
        for (waiter, outcome) in zip(others, outcomes) { waiter.continuation.resume(returning: .finished(outcome)) }
        let next = state.withLock { state -> Waiter? in
            guard !state.waiting.isEmpty else {
                state.writing = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        return ownOutcome
    }
}
