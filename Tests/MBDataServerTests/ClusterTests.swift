import AsyncHTTPClient
import Foundation
import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Synchronization
import Testing

@testable import MBDataServer

/// Several daemons, one truth (issue 13 §2): daemons on loopback ports share one PostgreSQL,
/// consumers spread over them, and one daemon dies mid-epoch.
@Suite(.enabled(if: PostgresServer.isAvailable, Comment(rawValue: PostgresServer.unavailableReason)))
struct ClusterTests {
    static let planQuery = "mode=share&group=cluster&batch_size=8&split=train"
    static let shareQuery = planQuery + "&lease_seconds=1"

    @Test func sixShareConsumersOnThreeDaemonsAckEveryBatchExactlyOnce() async throws {
        try await Self.shareEpoch(killingADaemon: false)
    }

    @Test(.timeLimit(.minutes(5)))
    func sixShareConsumersOnThreeDaemonsAckEveryBatchExactlyOnceThoughADaemonDies() async throws {
        try await Self.shareEpoch(killingADaemon: true)
    }

    /// PostgreSQL restarted twice mid-epoch under two daemons and four share consumers (issue
    /// 13 §5): first shut down (its sessions told, 57P01), then crashed (connections simply
    /// drop). Requests meanwhile get `503 state_unavailable`, which the consumers retry; the
    /// daemons reconnect by themselves once it is back; every ack answered 200 before a restart
    /// is in the cursor after it, and no batch's ack is answered 200 twice.
    @Test(.timeLimit(.minutes(5)))
    func daemonsReconnectWhenPostgreSQLRestartsMidEpochAndLoseNoAnsweredAck() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        try await PostgresServer.with { server in
            let configuration = ServeConfiguration(datasets: [("digits", path)], state: server.url(database: try await server.createDatabase()))
            try await Self.withDaemons(2, configuration) { addresses, _ in
                let (events, report) = AsyncStream.makeStream(of: Event.self)
                let consumed = try await withThrowingTaskGroup(of: [Consumed].self) { group in
                    group.addTask {
                        try await Self.restart(server, twiceAsConsumersReport: events, checkingAcksThrough: addresses[0])
                        return []
                    }
                    group.addTask {
                        defer { report.finish() }
                        return try await withThrowingTaskGroup(of: Consumed.self) { consumers in
                            for consumer in 0..<4 {
                                consumers.addTask { try await Self.consume(daemons: addresses, first: consumer % 2) { report.yield($0) } }
                            }
                            return try await consumers.reduce(into: []) { $0.append($1) }
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                let acked = consumed.flatMap(\.acked)
                #expect(acked.count == Set(acked).count, "a batch's ack answered 200 twice: \(acked.sorted())")
                #expect(consumed.map(\.unavailable).reduce(0, +) >= 2, "no request met the restarts")
                // Each daemon reads the store again, and the epoch is complete in it.
                for address in addresses {
                    let state = try await Daemon.retryingUnavailable { try await Daemon(url: address).state(try await Self.cursor(address)) }
                    let progress = state.progress(epoch: 0)
                    #expect(progress.lowWatermark == state.batchesPerEpoch && progress.finishedAbove.isEmpty, "\(address): \(progress)")
                }
            }
        }
    }

    /// Restarts `server` twice — a fast shutdown once 40 acks were answered, a crash once 100
    /// were — each time only after a request met the outage; after each, checks through
    /// `daemon` that every ack answered 200 so far is in the cursor.
    static func restart(
        _ server: PostgresServer, twiceAsConsumersReport events: AsyncStream<Event>, checkingAcksThrough daemon: String
    ) async throws {
        var iterator = events.makeAsyncIterator()
        var acked = Set<Int>()
        var unavailable = 0
        func next() async throws {
            switch await iterator.next() {
            case .acked(let batch)?: acked.insert(batch)
            case .unavailable?: unavailable += 1
            case nil: throw Failure("the consumers ended before PostgreSQL was restarted (\(acked.count) acks)")
            }
        }
        for (immediately, acks) in [(false, 40), (true, 100)] {
            while acked.count < acks { try await next() }
            try await server.stop(immediately: immediately)
            let before = unavailable
            while unavailable == before { try await next() }
            try await server.start()
            let state = try await Daemon.retryingUnavailable { try await Daemon(url: daemon).state(try await Self.cursor(daemon)) }
            let stored = PostgresStateStoreTests.acked(state)
            #expect(acked.isSubset(of: stored), "acks answered 200 but lost: \(acked.subtracting(stored).sorted())")
        }
    }

    /// One epoch of a share group leased by six consumers, two starting on each of three
    /// daemons; with `killingADaemon`, daemon 2 is cancelled mid-epoch and its consumers move on.
    static func shareEpoch(killingADaemon: Bool) async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        try await PostgresServer.with { server in
            let configuration = ServeConfiguration(datasets: [("digits", path)], state: server.url(database: try await server.createDatabase()))
            try await Self.withDaemons(3, configuration) { addresses, stop in
                let consumed = try await withThrowingTaskGroup(of: Consumed.self) { consumers in
                    for consumer in 0..<6 {
                        consumers.addTask {
                            let ackedSoFar = Mutex(0)
                            return try await Self.consume(daemons: addresses, first: consumer % 3) { event in
                                guard case .acked = event else { return }
                                // Daemon 2 dies once its first consumer has acked three batches.
                                if killingADaemon && consumer == 2 && ackedSoFar.withLock({ $0 += 1; return $0 }) == 3 { stop(2) }
                            }
                        }
                    }
                    return try await consumers.reduce(into: [Consumed]()) { $0.append($1) }
                }
                let acked = consumed.flatMap(\.acked)
                #expect(acked.count == Set(acked).count, "a batch acked twice: \(acked.sorted())")
                let state = try await Daemon.retryingUnavailable { try await Daemon(url: addresses[0]).state(try await Self.cursor(addresses[0])) }
                let progress = state.progress(epoch: 0)
                #expect(progress.lowWatermark == state.batchesPerEpoch && progress.finishedAbove.isEmpty)
                // Every batch was acked 200 — or, rarely, committed by a try whose answer was lost. A
                // batch can be both: a resent ack refused because the lease expired unacked, and the
                // batch leased again and acked by another consumer.
                let uncertain = Set(consumed.flatMap(\.resentAndRefused))
                let unanswered = Set(0..<state.batchesPerEpoch).subtracting(acked)
                #expect(unanswered.isSubset(of: uncertain), "batches neither acked 200 nor resent: \(unanswered.subtracting(uncertain).sorted())")
                #expect(Set(acked).isSubset(of: Set(0..<state.batchesPerEpoch)))
            }
        }
    }

    /// Runs `count` daemons of `configuration` while `body` runs; `body` gets their URLs and a
    /// function that stops daemon `i` (``withServer``'s graceful shutdown; the SIGKILL cases run
    /// real processes, in Tests/serve).
    static func withDaemons(
        _ count: Int, _ configuration: ServeConfiguration,
        _ body: @escaping @Sendable (_ addresses: [String], _ stop: @escaping @Sendable (Int) -> Void) async throws -> Void
    ) async throws {
        let (urls, announce) = AsyncStream.makeStream(of: (Int, String).self)
        let stops = (0..<count).map { _ in AsyncStream.makeStream(of: Void.self) }
        try await withThrowingTaskGroup(of: Void.self) { daemons in
            for index in 0..<count {
                let stop = stops[index].stream
                daemons.addTask {
                    // The body's end shuts the daemon down.
                    try await withServer(configuration) { url in
                        announce.yield((index, url))
                        for await _ in stop {}
                    }
                }
            }
            var found = [String](repeating: "", count: count)
            var iterator = urls.makeAsyncIterator()
            for _ in 0..<count {
                guard let (index, url) = await iterator.next() else { throw Failure("a daemon did not start") }
                found[index] = url
            }
            let continuations = stops.map(\.continuation)
            do {
                try await body(found) { continuations[$0].finish() }
            } catch {
                for stop in continuations { stop.finish() }
                throw error
            }
            for stop in continuations { stop.finish() }
            try await daemons.waitForAll()
        }
    }

    /// The share group's cursor id, from a daemon.
    static func cursor(_ daemon: String) async throws -> String {
        let answer = try await Daemon(url: daemon).send(.GET, "/v1/datasets/digits/cursor?" + planQuery)
        guard answer.status == 200 else { throw Failure("cursor: \(answer)") }
        return try WireJSON.decode(CursorState.self, from: Data(answer.body)).cursor
    }

    /// What one share consumer did.
    struct Consumed: Sendable {
        /// The batches whose acks were answered 200.
        var acked: [Int] = []
        /// The batches whose ack, sent again after a `503` or no answer, was refused
        /// `lease_expired`: the first try may have committed it.
        var resentAndRefused: [Int] = []
        /// The requests answered `503 state_unavailable`.
        var unavailable = 0
    }

    /// What a consumer reports as it goes.
    enum Event: Sendable {
        /// An ack of `batch` was answered 200.
        case acked(batch: Int)
        /// A request was answered `503 state_unavailable`.
        case unavailable
    }

    /// A share consumer as a failing-over client runs (schemas/serve-protocol.md §6): leases
    /// from its daemon, acks there, and moves to the next daemon when one cannot be reached or
    /// answers `503 state_unavailable` or `503 draining` (a daemon being stopped refuses new
    /// leases before it stops listening) — an ack is sent again, unchanged. `report` hears
    /// every 200 ack and every 503; gives up after two minutes without an answer it could use,
    /// and at once when cancelled.
    static func consume(daemons: [String], first: Int, report: @Sendable (Event) -> Void = { _ in }) async throws -> Consumed {
        var current = first
        var consumed = Consumed()
        var unanswered: Daemon.Lease?
        var resending = false
        var lastAnswer = ContinuousClock.now
        while lastAnswer.duration(to: .now) < .seconds(120) {
            let daemon = Daemon(url: daemons[current])
            do {
                if let lease = unanswered {
                    let body = Array(#"{"leases": [\#(lease.lease)]}"#.utf8)
                    let answer = try await daemon.send(
                        .POST, "/v1/cursors/\(lease.cursor)/acks", body: body, headers: [("Content-Type", "application/json")])
                    switch (answer.status, answer.code) {
                    case (200, _):
                        consumed.acked.append(lease.batch)
                        report(.acked(batch: lease.batch))
                    case (409, "lease_expired"):
                        // Expired, or an earlier try that got no answer committed it: the batch is not this consumer's.
                        if resending { consumed.resentAndRefused.append(lease.batch) }
                    case (503, "state_unavailable"), (503, "draining"): throw Daemon.Unavailable(answer: answer)
                    default: throw Failure("ack: \(answer)")
                    }
                    unanswered = nil
                    resending = false
                } else {
                    switch try await daemon.lease(shareQuery) {
                    case .complete:
                        return consumed
                    case .wait:
                        // Every batch left is leased (some to consumers that lost them, until they expire): ask again.
                        try await Task.sleep(for: .milliseconds(50))
                    case .batch(let lease):
                        unanswered = lease
                    }
                }
                lastAnswer = .now
            } catch let failure as Failure {
                throw failure
            } catch is Daemon.Unavailable {
                resending = unanswered != nil
                consumed.unavailable += 1
                report(.unavailable)
                // A client's backoff: the store is down for every daemon alike.
                try await Task.sleep(for: .milliseconds(100))
                current = (current + 1) % daemons.count
            } catch {
                // Cancelled (another consumer failed): stop, rather than ask the daemons again for two minutes.
                try Task.checkCancellation()
                // No answer: the daemon is gone; the shared cursor is the same on the next one.
                resending = unanswered != nil
                current = (current + 1) % daemons.count
            }
        }
        throw Failure("a consumer found no daemon to serve it for two minutes")
    }
}
