import Foundation
import Logging
import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Synchronization
import Testing

@testable import MBDataClient
@testable import MBDataServer

/// A stream's claim on its cursor in the state store: what keeps two daemons sharing a
/// store from streaming one cursor at once.
@Suite struct StreamClaimTests {
    static let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    static let query = "batch_size=64&seed=7&split=train"

    /// Another daemon holding the cursor's claim in the store: the stream is refused
    /// `409 cursor_busy` and leaves no claim of this daemon behind; once that claim is
    /// released the stream runs.
    @Test func aStreamOfACursorAnotherDaemonClaimedIsRefusedAsBusy() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let configuration = ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))
        try await withServer(configuration, clock: .continuous) { server, url in
            let transport = try HTTPTransport(url: url, token: nil)
            let cursor = try await transport.call(.GET, "/v1/datasets/digits/cursor?" + Self.query, as: CursorState.self).cursor
            #expect(try await server.store.claimStream(cursor: cursor, holder: "another daemon", seconds: 30))

            let refused = try await transport.exchange(.GET, "/v1/datasets/digits/batches?" + Self.query, json: nil)
            #expect(refused.status == 409)
            #expect(try WireJSON.decode(ErrorEnvelope.self, from: Data(refused.body)).error.code == "cursor_busy")
            #expect(try await server.store.claimStream(cursor: cursor, holder: "another daemon", seconds: 30))

            try await server.store.releaseStream(cursor: cursor, holder: "another daemon")
            let streamed = try await transport.call(.GET, "/v1/datasets/digits/batches?" + Self.query)
            guard case .end(let reason)? = try WireDecoder.messages(streamed.body).last else {
                Issue.record("the stream did not end with its end message")
                return
            }
            #expect(reason == .complete)
            try await transport.shutdown()
        }
    }

    /// A claim another daemon took over once it lapsed: the stream holding it learns it
    /// is lost at its next renewal, and a new stream of that cursor is refused.
    @Test(.timeLimit(.minutes(1))) func aStreamWhoseClaimAnotherDaemonTookLearnsItIsLost() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"), clock: clock.serveClock)
        let claim = try await StreamClaim(store: store, cursor: "c-1", holder: "a", seconds: 0.03, logger: Self.logger)
        let refused = await #expect(throws: ServeError.self) {
            _ = try await StreamClaim(store: store, cursor: "c-1", holder: "b", seconds: 30, logger: Self.logger)
        }
        #expect(refused?.code == "cursor_busy")
        clock.advance(by: .seconds(1))
        #expect(try await store.claimStream(cursor: "c-1", holder: "b", seconds: 30))
        #expect(!claim.isLost)
        await claim.keepRenewed()
        #expect(claim.isLost)
    }

    /// The Swift client asks again when a stream's cursor is busy — as when a loader opens
    /// the next epoch before the daemon has closed the last epoch's stream — and streams once
    /// the cursor is free; a cursor that stays busy is refused after a few tries, naming
    /// `cursor_busy`, rather than waited on until the client gives up.
    @Test(.timeLimit(.minutes(1))) func theClientOpensAStreamAgainOnceItsCursorIsNoLongerBusy() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let configuration = ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))
        try await withServer(configuration, clock: .continuous) { server, url in
            let loader = {
                var loader = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<1)
                loader.split = "train"
                return loader
            }()
            let source = try ServeSource(url: url, dataset: "digits")
            _ = try await source.prepare(loader, resumingFrom: nil)
            let cursor = CursorState.id(dataset: "digits", group: "default", mode: .partition, parameters: loader.plan, rank: 0, replica: 0)
            #expect(try await server.store.claimStream(cursor: cursor, holder: "another daemon", seconds: 30))

            let refused = await #expect(throws: MBDataError.self) {
                try await source.stream(epoch: 0, configuration: loader) { _ in }
            }
            #expect(refused.map { "\($0)".contains("cursor_busy") } == true, "\(String(describing: refused))")
            #expect(try await Self.conflicts(at: url) == Double(1 + ServeSource.busyRetries), "the first open and its retries, then refused")

            let delivered = try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask {
                    let count = Mutex(0)
                    try await source.stream(epoch: 0, configuration: loader) { _ in count.withLock { $0 += 1 } }
                    return count.withLock { $0 }
                }
                try await Task.sleep(for: .milliseconds(150))
                try await server.store.releaseStream(cursor: cursor, holder: "another daemon")
                return try await group.reduce(0, +)
            }
            #expect(delivered == 1449 / 64)
            try await source.shutdown()
        }
    }

    /// The requests the daemon at `url` answered `409`, from its `/metrics`.
    static func conflicts(at url: String) async throws -> Double {
        let transport = try HTTPTransport(url: url, token: nil)
        let text = String(decoding: try await transport.call(.GET, "/metrics").body, as: UTF8.self)
        try await transport.shutdown()
        return text.split(separator: "\n").filter { $0.hasPrefix("mbdata_request_duration_seconds_count") && $0.contains(#"status="409""#) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}
