#if os(Linux)
import Foundation
@testable import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Synchronization
import Testing

@testable import MBDataClient
@testable import MBDataServer

/// A `ServeSource` given several daemons over one dataset and one state: a dead daemon
/// listed first, and a daemon that stops mid-epoch while its successor starts on the same
/// state file (SQLite: one daemon at a time). Every batch is delivered and acked exactly once.
@Suite struct FailoverTests {
    /// Batches of 8 of the digits' train split: 181 per epoch.
    static func configuration() -> MultiBatchLoader.Configuration {
        var config = MultiBatchLoader.Configuration(batchSize: 8, seed: 7, epochs: 0..<1)
        config.split = "train"
        config.concurrency = 4
        return config
    }

    static let batchesPerEpoch = 1449 / 8

    static func cursorState(at url: String) async throws -> CursorState {
        try await cursorState(
            CursorState.id(dataset: "digits", group: "default", mode: .partition, parameters: configuration().plan, rank: 0, replica: 0), at: url)
    }

    static func cursorState(_ id: String, at url: String) async throws -> CursorState {
        let transport = try HTTPTransport(url: url, token: nil)
        let state = try await transport.call(.GET, "/v1/cursors/\(id)", as: CursorState.self)
        try await transport.shutdown()
        return state
    }

    static func freeURL() throws -> String {
        let listener = try SilentListener()
        listener.close()
        return "http://127.0.0.1:\(listener.port)"
    }

    @Test func aDeadDaemonListedFirstHandsEverythingToTheNext() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let dead = try Self.freeURL()
        try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            // A connect timeout of 300 s: a refused connection that waited for it would take at least that
            // long; the whole epoch takes under a second alone and about a minute beside the full suite.
            let source = try ServeSource(urls: [dead, url], dataset: "digits", timeouts: .init(connect: .seconds(300)))
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
            let started = ContinuousClock.now
            try await MultiBatchLoader(remote: source, configuration: Self.configuration()).run(trainer: trainer)
            #expect(started.duration(to: .now) < .seconds(150), "the dead daemon cost a connect timeout")
            #expect(source.transport.base == url, "the source stays on the daemon that answered")
            #expect(await trainer.deliveries == Self.batchesPerEpoch)
            #expect(await Set(trainer.finished).count == Self.batchesPerEpoch)
            #expect(try await Self.cursorState(at: url).progress(epoch: 0).lowWatermark == Self.batchesPerEpoch)
        }
    }

    /// 8,192 samples of 4 KiB in batches of 16: 512 batches, 32 MiB, far more than the
    /// socket buffers and the loader's slots hold once 20 batches are trained, so the stream
    /// is still open when its daemon stops, however fast the daemon ran ahead.
    static func blobConfiguration() -> MultiBatchLoader.Configuration {
        var config = MultiBatchLoader.Configuration(batchSize: 16, seed: 7, epochs: 0..<1)
        config.concurrency = 4
        return config
    }

    static let blobBatchesPerEpoch = 8_192 / 16

    @Test func aStreamMovesToTheNextDaemonWhenItsDaemonStopsMidEpoch() async throws {
        let directory = try TemporaryDirectory()
        let path = try await blobDataset(directory, samples: 8_192)
        let configuration = ServeConfiguration(datasets: [("blobs", path)], state: directory.path("state.sqlite"))
        let (first, second) = (try SilentListener(), try SilentListener())
        first.close()
        second.close()
        let urls = ["http://127.0.0.1:\(first.port)", "http://127.0.0.1:\(second.port)"]
        let (firstUp, firstUpSignal) = AsyncStream.makeStream(of: Void.self)
        let (stopFirst, stopFirstSignal) = AsyncStream.makeStream(of: Void.self)
        let (trained, trainedSignal) = AsyncStream.makeStream(of: Void.self)
        let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
        await trainer.setOnFinish { finished in
            if finished == 20 { stopFirstSignal.finish() }
        }
        let served = try await withThrowingTaskGroup(of: Double?.self) { group in
            group.addTask {
                // Daemon A until the trainer has finished 20 batches, then B on the same state file.
                try await withServer(configuration, clock: .continuous, port: first.port) { _ in
                    firstUpSignal.finish()
                    for await _ in stopFirst {}
                }
                return try await withServer(configuration, clock: .continuous, port: second.port) { url in
                    for await _ in trained {}
                    return try await Self.batchesServed(at: url)
                }
            }
            group.addTask {
                for await _ in firstUp {}
                let source = try ServeSource(urls: urls, dataset: "blobs")
                try await MultiBatchLoader(remote: source, configuration: Self.blobConfiguration()).run(trainer: trainer)
                #expect(source.transport.base == urls[1])
                let id = CursorState.id(
                    dataset: "blobs", group: "default", mode: .partition, parameters: Self.blobConfiguration().plan, rank: 0, replica: 0)
                #expect(try await Self.cursorState(id, at: urls[1]).progress(epoch: 0).lowWatermark == Self.blobBatchesPerEpoch)
                trainedSignal.finish()
                return nil
            }
            return try await group.reduce(into: [Double]()) { if let value = $1 { $0.append(value) } }.first
        }
        #expect(await trainer.deliveries == Self.blobBatchesPerEpoch, "no batch delivered twice")
        #expect(await Set(trainer.finished).count == Self.blobBatchesPerEpoch)
        #expect((served ?? 0) > 0, "the stream moved to the second daemon")
    }

    /// `mbdata_batches_served_total` of the daemon at `url`, summed over its labels.
    static func batchesServed(at url: String) async throws -> Double {
        let transport = try HTTPTransport(url: url, token: nil)
        let text = String(decoding: try await transport.call(.GET, "/metrics").body, as: UTF8.self)
        try await transport.shutdown()
        return text.split(separator: "\n").filter { $0.hasPrefix("mbdata_batches_served_total") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    @Test func urlsComeFromTheArgumentOrTheEnvironment() throws {
        #expect(try ServeSource(url: "http://a:1, http://b:2", dataset: "d").urls == ["http://a:1", "http://b:2"])
        #expect(ServeSource.environmentURLs(["MBDATA_URLS": "http://x:1,http://y:2", "MBDATA_URL": "http://z:3"]) == ["http://x:1", "http://y:2"])
        #expect(ServeSource.environmentURLs(["MBDATA_URL": "http://z:3"]) == ["http://z:3"])
        #expect(ServeSource.environmentURLs([:]) == ["http://127.0.0.1:7070"])
        #expect(throws: MBDataError.self) { try ServeSource(urls: [" "], dataset: "d") }
    }

    @Test func givingUpNamesEveryDaemonTried() async throws {
        let dead = [try Self.freeURL(), try Self.freeURL()]
        let source = try ServeSource(urls: dead, dataset: "digits", reconnects: 1)
        let error = await #expect(throws: MBDataError.self) {
            _ = try await source.prepare(RemoteLoaderTests.configuration(), resumingFrom: nil)
        }
        #expect(error?.code == .unavailable)
        #expect(dead.allSatisfy { error?.message.contains($0) == true }, "\(String(describing: error))")
        try await source.shutdown()
    }
}
#endif
