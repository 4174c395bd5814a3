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

    struct Refusal: Error {}
}
