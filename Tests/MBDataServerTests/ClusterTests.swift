import AsyncHTTPClient
import Foundation
import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
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

    @Test(
        .disabled(
            "hangs: the daemon cancelled with requests in flight leaves a connection unanswered (CLOSE-WAIT) and never returns; to be found before it runs"
        ))
    func sixShareConsumersOnThreeDaemonsAckEveryBatchExactlyOnceThoughADaemonDies() async throws {
        try await Self.shareEpoch(killingADaemon: true)
    }

    /// One epoch of a share group leased by six consumers, two starting on each of three
    /// daemons; with `killingADaemon`, daemon 2 is cancelled mid-epoch and its consumers move on.
    static func shareEpoch(killingADaemon: Bool) async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        try await PostgresServer.with { server in
            let configuration = ServeConfiguration(datasets: [("digits", path)], state: server.url(database: try await server.createDatabase()))
            let (urls, announce) = AsyncStream.makeStream(of: (Int, String).self)
            let stops = (0..<3).map { _ in AsyncStream.makeStream(of: Void.self) }
            try await withThrowingTaskGroup(of: Void.self) { daemons in
                for index in 0..<3 {
                    let stop = stops[index].stream
                    daemons.addTask {
                        // The body's end cancels the daemon at once: no drain, as when its process is killed.
                        try await withServer(configuration) { url in
                            announce.yield((index, url))
                            for await _ in stop {}
                        }
                    }
                }
                var found = [String](repeating: "", count: 3)
                var iterator = urls.makeAsyncIterator()
                for _ in 0..<3 {
                    guard let (index, url) = await iterator.next() else { throw Failure("a daemon did not start") }
                    found[index] = url
                }
                let addresses = found
                let killDaemon2 = stops[2].continuation
                let acked = try await withThrowingTaskGroup(of: [Int].self) { consumers in
                    for consumer in 0..<6 {
                        consumers.addTask {
                            try await Self.consume(daemons: addresses, first: consumer % 3) { ackedSoFar in
                                // Daemon 2 dies once its first consumer has acked three batches.
                                if killingADaemon && consumer == 2 && ackedSoFar == 3 { killDaemon2.finish() }
                            }
                        }
                    }
                    return try await consumers.reduce(into: [Int]()) { $0 += $1 }
                }
                #expect(acked.count == Set(acked).count, "a batch acked twice: \(acked.sorted())")
                let state = try await Daemon(url: addresses[0]).state(try await Self.cursor(addresses[0]))
                let progress = state.progress(epoch: 0)
                #expect(progress.lowWatermark == state.batchesPerEpoch && progress.finishedAbove.isEmpty)
                #expect(Set(acked) == Set(0..<state.batchesPerEpoch))
                for stop in stops { stop.continuation.finish() }
                try await daemons.waitForAll()
            }
        }
    }

    /// The share group's cursor id, from a daemon.
    static func cursor(_ daemon: String) async throws -> String {
        let answer = try await Daemon(url: daemon).send(.GET, "/v1/datasets/digits/cursor?" + planQuery)
        guard answer.status == 200 else { throw Failure("cursor: \(answer)") }
        return try WireJSON.decode(CursorState.self, from: Data(answer.body)).cursor
    }

    /// A share consumer as a failing-over client runs: leases from its daemon, acks there,
    /// and moves to the next daemon when one cannot be reached; returns the batches whose
    /// acks were answered 200. `acked` hears the count after each.
    static func consume(daemons: [String], first: Int, acked: @Sendable (Int) -> Void) async throws -> [Int] {
        var current = first
        var done: [Int] = []
        var failures = 0
        while failures < 200 {
            let daemon = Daemon(url: daemons[current])
            do {
                switch try await daemon.lease(shareQuery) {
                case .complete:
                    return done
                case .wait:
                    // Every batch left is leased (some to the dead daemon's consumers, until they expire): ask again.
                    try await Task.sleep(for: .milliseconds(50))
                case .batch(let lease):
                    let body = Array(#"{"leases": [\#(lease.lease)]}"#.utf8)
                    let answer = try await daemon.send(
                        .POST, "/v1/cursors/\(lease.cursor)/acks", body: body, headers: [("Content-Type", "application/json")])
                    if answer.status == 200 {
                        done.append(lease.batch)
                        acked(done.count)
                    } else if answer.code != "lease_expired" {
                        throw Failure("ack: \(answer)")
                    }
                }
            } catch let failure as Failure {
                throw failure
            } catch {
                // No answer: the daemon is gone; the shared cursor is the same on the next one.
                failures += 1
                current = (current + 1) % daemons.count
            }
        }
        throw Failure("a consumer found no daemon to serve it")
    }
}
