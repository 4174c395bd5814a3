import Foundation
import HTTPTypes
import Logging
import MBData
import NIOCore
import Synchronization
import Testing

@testable import MBDataServer

/// The deadline every PostgreSQL state-store call runs under: the answer comes by the
/// deadline even when the call never ends, and a call that ends first is answered with its
/// result.
struct PostgresDeadlineTests {
    @Test func aCallThatEndsInTimeIsAnsweredWithItsResult() async throws {
        let answer = try await PostgresFailure.withDeadline(.seconds(30)) { 42 }
        #expect(answer == 42)
        await #expect(throws: Refusal.self) {
            try await PostgresFailure.withDeadline(.seconds(30)) { () async throws -> Int in throw Refusal() }
        }
    }

    @Test func aCallThatIgnoresCancellationIsAnsweredAtTheDeadlineAndThenCancelled() async throws {
        let sawCancellation = Mutex(false)
        let started = ContinuousClock.now
        await #expect(throws: PostgresFailure.TimedOut.self) {
            try await PostgresFailure.withDeadline(.milliseconds(200)) { () async throws -> Int in
                // Runs for a minute whatever happens, as a driver deaf to cancellation; notes
                // when it was cancelled.
                while started.duration(to: .now) < .seconds(60) {
                    if Task.isCancelled { sawCancellation.withLock { $0 = true } }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return 0
            }
        }
        // Far below the call's minute, with room for a loaded machine's scheduling.
        #expect(started.duration(to: .now) < .seconds(30), "the answer waited for the call")
        while started.duration(to: .now) < .seconds(30), !sawCancellation.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(sawCancellation.withLock { $0 }, "the call was not cancelled at the deadline")
    }

    @Test func cancellingTheCallerEndsTheWait() async throws {
        let started = ContinuousClock.now
        let waiting = Task {
            try await PostgresFailure.withDeadline(.seconds(60)) { () async throws -> Int in
                try await Task.sleep(for: .seconds(60))
                return 0
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(started.duration(to: .now) < .seconds(30), "the wait outlasted its caller's cancellation")
    }

    /// A call past its deadline may still commit afterwards: its 503 says so instead of
    /// "nothing was changed", which a refused connection still says — through the mapping of
    /// any error and through an outputs submission's refusal alike.
    @Test func aTimedOutWriteIsUnavailableAndMayStillApply() throws {
        let logger = Logger(label: "deadline-test") { _ in SwiftLogNoOpLogHandler() }
        let store = try PostgresStateStore(url: "postgresql://mbdata@127.0.0.1:1/none", logger: logger)
        let timedOut = MBDataError(.storage, "cannot write an ack", cause: PostgresFailure.TimedOut(timeout: .seconds(5)))
        let answer = ServeError.from(timedOut, store: store)
        #expect(answer.status == .serviceUnavailable && answer.code == "state_unavailable" && answer.headers[.retryAfter] == "1")
        #expect(answer.message.hasSuffix("it may still be applied; retrying it is safe"), "\(answer)")
        // The outputs submission's refusal says the same of a commit past its deadline.
        let commit = ServeError.stateUnavailable("cannot write the outputs of dataset d", after: timedOut)
        #expect(commit.message.hasSuffix("it may still be applied; retrying it is safe") && commit.headers[.retryAfter] == "1")
        let refused = MBDataError(.storage, "cannot write an ack", cause: IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        let refusedAnswer = ServeError.from(refused, store: store)
        #expect(refusedAnswer.code == "state_unavailable" && refusedAnswer.message.hasSuffix("nothing was changed, retry later"), "\(refusedAnswer)")
    }

    struct Refusal: Error {}
}
