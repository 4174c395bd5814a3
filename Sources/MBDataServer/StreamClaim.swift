import HTTPTypes
import Logging
import Synchronization

/// An open stream's claim on its cursor in the state store, so that no other daemon sharing
/// the store streams the cursor at the same time (`409 cursor_busy`): taken before the stream
/// opens, renewed while it runs, given back when it ends. A daemon that dies stops renewing
/// it, and it lapses after ``seconds``.
final class StreamClaim: Sendable {
    private let store: any StateStore
    let cursor: String
    private let holder: String
    let seconds: Double
    private let logger: Logger
    private let lost = Atomic<Bool>(false)

    /// Claims `cursor`'s stream for `holder` (this daemon) for `seconds`.
    ///
    /// - Throws: `409 cursor_busy` when another daemon's claim has not lapsed; the store's
    ///   errors.
    init(store: any StateStore, cursor: String, holder: String, seconds: Double, logger: Logger) async throws {
        guard try await store.claimStream(cursor: cursor, holder: holder, seconds: seconds) else {
            throw ServeError(.conflict, "cursor_busy", "cursor \(cursor) already has an open stream on another daemon (one stream per rank and replica)")
        }
        self.store = store
        self.cursor = cursor
        self.holder = holder
        self.seconds = seconds
        self.logger = logger
    }

    /// Whether the claim lapsed or another daemon took it: the stream must end.
    var isLost: Bool { lost.load(ordering: .acquiring) }

    /// Renews the claim every third of its duration until the task is cancelled. A renewal
    /// that fails is tried again at the next tick; once no renewal has succeeded for the
    /// claim's whole duration, or another daemon holds it, the claim is lost.
    func keepRenewed() async {
        var renewed = ContinuousClock.now
        while !isLost {
            do {
                try await Task.sleep(for: .milliseconds(Int64(seconds * 1000 / 3)))
            } catch {
                return
            }
            do {
                if try await store.claimStream(cursor: cursor, holder: holder, seconds: seconds) {
                    renewed = .now
                    continue
                }
                logger.error("another daemon took the stream's claim on its cursor", metadata: ["cursor": "\(cursor)"])
                lost.store(true, ordering: .releasing)
            } catch {
                logger.warning("cannot renew the stream's claim on its cursor", metadata: ["cursor": "\(cursor)", "error": "\(error)"])
                if renewed.duration(to: .now) >= .milliseconds(Int64(seconds * 1000)) { lost.store(true, ordering: .releasing) }
            }
        }
    }

    /// Gives the claim back; one the store cannot release lapses on its own.
    func release() async {
        do {
            try await store.releaseStream(cursor: cursor, holder: holder)
        } catch {
            logger.warning("cannot release the stream's claim on its cursor; it lapses", metadata: ["cursor": "\(cursor)", "error": "\(error)"])
        }
    }
}
