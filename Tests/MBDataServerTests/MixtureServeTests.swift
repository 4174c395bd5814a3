import AsyncHTTPClient
import Foundation
@testable import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Testing

@testable import MBDataClient
@testable import MBDataServer

/// Mixtures through `serve` and the Swift client (issue 14, protocol 1.2): `mix=` on
/// `/v1/mixture/…` serves the local mixture loader's batches with `_source`, each epoch
/// holding every source's exact share; a checkpoint resumes exactly; two share consumers
/// get every batch once; another mixture, an unknown source and a bad weight are refused.
@Suite struct MixtureServeTests {
    static let names = ["web", "code", "books"]
    static let sizes = [50, 17, 5]

    /// Three datasets of the same fields whose `value` is `1000 × source + (id − 1)`, so a
    /// row shows which dataset and sample it is; returns their paths.
    static func datasets(in directory: TemporaryDirectory) async throws -> [String] {
        let schema = try Schema(
            json: Data(#"{"name": "m", "fields": [{"name": "value", "dtype": "int64"}, {"name": "tokens", "dtype": "int32", "shape": [null]}]}"#.utf8))
        var paths: [String] = []
        for (source, size) in sizes.enumerated() {
            let lines = (0..<size).map { #"{"value": \#(1000 * source + $0), "tokens": [\#((0...($0 % 3)).map(String.init).joined(separator: ","))]}"# }
            let jsonl = try directory.write("\(names[source]).jsonl", lines.joined(separator: "\n") + "\n")
            let path = directory.path("\(names[source]).mbdb")
            _ = try await Dataset.ingest(into: path, SourceSpec(paths: [jsonl]), schema: schema)
            paths.append(path)
        }
        return paths
    }

    static func serve(_ paths: [String], _ directory: TemporaryDirectory) -> ServeConfiguration {
        ServeConfiguration(datasets: Array(zip(names, paths)), state: directory.path("state.sqlite"))
    }

    static func configuration(_ weights: [MixtureWeight], epochSize: Int?, datasets: [Dataset]? = nil) -> MultiBatchLoader.Configuration {
        var configuration = MultiBatchLoader.Configuration(plan: PlanParameters(seed: 11, batchSize: 4, tail: .drop), epochs: 0..<3)
        configuration.mixture = zip(names, weights).enumerated().map { index, pair in
            guard let datasets else { return MixtureComponent(name: pair.0, weight: pair.1) }
            return MixtureComponent(dataset: datasets[index], name: pair.0, weight: pair.1)
        }
        configuration.epochSize = epochSize
        configuration.concurrency = 2
        return configuration
    }

    typealias Row = MixtureRow
    typealias Recorder = BatchRecorder

    static func rows(_ batch: Batch) -> [Row] { MixtureRow.rows(of: batch) }

    /// Per epoch, the rows each source contributed.
    static func counts(_ rows: [PlanItem: [Row]]) -> [Int: [Int]] {
        var counts: [Int: [Int]] = [:]
        for (item, batch) in rows {
            for row in batch where row.source >= 0 { counts[item.epoch, default: [0, 0, 0]][Int(row.source)] += 1 }
        }
        return counts
    }

    @Test(arguments: [
        ([0.6, 0.25, 0.15] as [MixtureWeight], 40 as Int?, [24, 10, 6]),
        ([.repeat(2), .repeat(1), .repeat(0.5)], nil, [100, 17, 3]),
        ([.choose(3), .choose(40), .choose(13)], nil, [3, 40, 13]),
    ])
    func aMixtureOverServeIsTheLocalMixtureWithExactCountsAndSources(weights: [MixtureWeight], epochSize: Int?, counts: [Int]) async throws {
        let directory = try TemporaryDirectory()
        let paths = try await Self.datasets(in: directory)
        let local = Recorder()
        let datasets = try paths.map { try Dataset(path: $0) }
        try await MultiBatchLoader(configuration: Self.configuration(weights, epochSize: epochSize, datasets: datasets)).run(trainer: local)
        let expected = await local.bytes
        let served = try await withServer(Self.serve(paths, directory)) { url in
            let recorder = Recorder()
            let source = try ServeSource(url: url, mixture: Self.configuration(weights, epochSize: epochSize).mixture, epochSize: epochSize)
            try await MultiBatchLoader(remote: source, configuration: Self.configuration(weights, epochSize: epochSize)).run(trainer: recorder)
            try await source.shutdown()
            return recorder
        }
        #expect(await served.bytes == expected, "the daemon serves the local mixture's batches")
        #expect(await served.sourcesAreInt32)
        let rows = await served.rows
        #expect(Self.counts(rows) == [0: counts, 1: counts, 2: counts], "each epoch holds every source's exact share")
        for row in rows.values.joined() {
            #expect(row.value == 1000 * Int64(row.source) + row.id - 1, "_source and _id name the row's dataset and sample")
        }
    }

    @Test func aMixtureCheckpointResumesThroughServeExactlyAndAnotherMixtureIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let paths = try await Self.datasets(in: directory)
        let configuration = Self.configuration([0.6, 0.25, 0.15], epochSize: 40)
        let serve = Self.serve(paths, directory)
        let expected = try await withServer(serve) { url in
            let recorder = Recorder()
            let source = try ServeSource(url: url, mixture: configuration.mixture, epochSize: 40)
            try await MultiBatchLoader(remote: source, configuration: configuration).run(trainer: recorder)
            try await source.shutdown()
            return await recorder.bytes
        }
        #expect(expected.count == 30)
        for cut in [1, 13, 22] {
            let (first, checkpoint) = try await withServer(serve) { url in
                let recorder = Recorder(stopAfter: cut)
                let source = try ServeSource(url: url, mixture: configuration.mixture, epochSize: 40, group: "cut\(cut)")
                let loader = try await MultiBatchLoader(remote: source, configuration: configuration)
                try await loader.run(trainer: recorder)
                try await source.shutdown()
                return (await recorder.bytes, await loader.checkpoint())
            }
            #expect(checkpoint.mixture?.sources.map(\.name) == Self.names)
            let rest = try await withServer(serve) { url in
                let recorder = Recorder()
                let source = try ServeSource(url: url, mixture: configuration.mixture, epochSize: 40, group: "cut\(cut)")
                try await MultiBatchLoader(remote: source, configuration: configuration, resumingFrom: checkpoint).run(trainer: recorder)
                try await source.shutdown()
                return await recorder.bytes
            }
            let finished = first.filter { checkpoint.isFinished(epoch: $0.key.epoch, batch: $0.key.batch) }
            #expect(Set(finished.keys).isDisjoint(with: rest.keys), "cut at \(cut): nothing repeated")
            #expect(finished.merging(rest) { old, _ in old } == expected, "cut at \(cut): nothing lost, the same bytes")

            try await withServer(serve) { url in
                let other = Self.configuration([0.5, 0.25, 0.25], epochSize: 40)
                let source = try ServeSource(url: url, mixture: other.mixture, epochSize: 40, group: "cut\(cut)")
                await #expect(throws: MBDataError.self, "the checkpoint's mixture is not this one") {
                    _ = try await MultiBatchLoader(remote: source, configuration: other, resumingFrom: checkpoint)
                }
                try await source.shutdown()
            }
        }
    }

    @Test func twoShareConsumersOfAMixtureGetEveryBatchExactlyOnce() async throws {
        let directory = try TemporaryDirectory()
        let paths = try await Self.datasets(in: directory)
        let query = "batch_size=4&seed=11&group=share&lease_seconds=60&mix=web:0.6,code:0.25,books:0.15&epoch_size=40"
        let taken = try await withServer(Self.serve(paths, directory)) { url in
            let daemon = Daemon(url: url)
            return try await withThrowingTaskGroup(of: [(Int, [Row])].self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var taken: [(Int, [Row])] = []
                        while true {
                            let answer = try await daemon.send(.POST, "/v1/mixture/lease?" + query)
                            if answer.status == 204 { continue }
                            guard answer.status == 200, let cursor = answer.headers.first(name: "MBData-Cursor") else {
                                throw MBDataError(.unavailable, "lease: \(answer)")
                            }
                            guard case .batch(let ready, let lease)? = try WireDecoder.messages(answer.body).first else { return taken }
                            let batch = try Batch(epoch: ready.epoch, index: ready.batch, rank: ready.rank, safetensors: LZ4Frame.decompress(ready.frame))
                            taken.append((ready.batch, MixtureServeTests.rows(batch)))
                            let acked = try await daemon.send(
                                .POST, "/v1/cursors/\(cursor)/acks", body: Array(#"{"leases": [\#(lease)]}"#.utf8),
                                headers: [("Content-Type", "application/json")])
                            guard acked.status == 200 else { throw MBDataError(.unavailable, "ack: \(acked)") }
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        #expect(taken.map(\.0).sorted() == Array(0..<10), "every batch of the epoch once")
        let rows = Dictionary(uniqueKeysWithValues: taken.map { (PlanItem(epoch: 0, batch: $0.0, rank: 0), $0.1) })
        #expect(Self.counts(rows) == [0: [24, 10, 6]])
    }

    @Test func unknownSourcesBadWeightsAndAnotherMixtureOfACursorAreRefused() async throws {
        let directory = try TemporaryDirectory()
        let paths = try await Self.datasets(in: directory)
        try await withServer(Self.serve(paths, directory)) { url in
            let daemon = Daemon(url: url)
            let plan = "batch_size=4&seed=11&group=g"
            let unknown = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=web:0.6,nope:0.4")
            #expect(unknown.status == 404 && unknown.message.contains("nope"), "\(unknown)")
            // The item grammar's refusals (MixtureItems, shared with `mbdata --mix`) name the item at fault.
            let refusals = [
                ("web:0.6,code:lots", "WEIGHT \"lots\" is not"), ("web:0.6,code", "item 2 \"code\" is not NAME:WEIGHT"),
                ("web:0.6,web:0.4", "names web again"), ("web:0.6,", "item 2 \"\" is not NAME:WEIGHT"), ("web:0.6,code:-1", "must be positive"),
                ("web:0.6,code:repeat:1", "cannot be mixed"), ("w~b:1", "dataset names of 1–64"),
            ]
            for (bad, reason) in refusals {
                let answer = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=\(bad)")
                #expect(
                    answer.status == 400 && answer.code == "invalid_parameter" && answer.message.contains("query parameter mix")
                        && answer.message.contains(reason), "\(bad): \(answer)")
            }
            let packed = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=web:0.6,code:0.4&pack=value:8")
            #expect(packed.status == 400 && packed.message.contains("query parameter pack"), "a fixed-shape field is not packed: \(packed)")
            let noMix = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)")
            #expect(noMix.status == 400 && noMix.message.contains("query parameter mix"), "\(noMix)")
            let onDataset = try await daemon.send(.GET, "/v1/datasets/web/cursor?\(plan)&mix=web:1")
            #expect(onDataset.status == 400 && onDataset.message.contains("/v1/mixture"), "\(onDataset)")
            let sizeAlone = try await daemon.send(.GET, "/v1/datasets/web/cursor?\(plan)&epoch_size=10")
            #expect(sizeAlone.status == 400 && sizeAlone.message.contains("epoch_size"), "\(sizeAlone)")
            let badSize = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=web:repeat:1,code:choose:3&epoch_size=10")
            #expect(badSize.status == 400 && badSize.message.contains("query parameter epoch_size"), "\(badSize)")

            let made = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=web:0.6,code:0.4&epoch_size=20")
            #expect(made.status == 200, "\(made)")
            let state = try WireJSON.decode(CursorState.self, from: Data(made.body))
            #expect(state.dataset == "mix:web,code" && state.mixture?.sources.map(\.weight) == [0.6, 0.4] && state.mixture?.epochSize == 20)
            let reweighted = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=web:0.5,code:0.5&epoch_size=20")
            #expect(reweighted.status == 409 && reweighted.code == "cursor_mismatch" && reweighted.message.contains("weight"), "\(reweighted)")
            let resized = try await daemon.send(.GET, "/v1/mixture/cursor?\(plan)&mix=web:0.6,code:0.4&epoch_size=24")
            #expect(resized.status == 409 && resized.message.contains("draws"), "\(resized)")

            var otherVersion = state
            otherVersion.mixture?.sources[1].datasetVersion = 2
            let put = try await daemon.send(
                .PUT, "/v1/cursors/\(state.cursor)", body: Array(try WireJSON.encode(otherVersion)), headers: [("Content-Type", "application/json")])
            #expect(put.status == 409 && put.code == "cursor_mismatch" && put.message.contains("version"), "\(put)")
            let same = try await daemon.send(
                .PUT, "/v1/cursors/\(state.cursor)", body: Array(try WireJSON.encode(state)), headers: [("Content-Type", "application/json")])
            #expect(same.status == 200, "the cursor's own state restores: \(same)")
        }
    }

    @Test func theCLIAndTheDaemonParsePackingByOneRule() throws {
        let top = PackingSpec.rowLengths.upperBound
        #expect(try PackingSpec.parse("tokens:\(top)", separator: ":").rowLength == top)
        #expect(try PackingSpec.parse("tokens=8", separator: "=", window: 3, overlong: "drop") == PackingSpec(field: "tokens", rowLength: 8, window: 3, overlong: .drop))
        #expect(throws: PackingSpec.TextError.fieldAndLength) { try PackingSpec.parse("tokens:\(top + 1)", separator: ":") }
        #expect(throws: PackingSpec.TextError.fieldAndLength) { try PackingSpec.parse("1tokens:8", separator: ":") }
        #expect(throws: PackingSpec.TextError.window) { try PackingSpec.parse("tokens:8", separator: ":", window: PackingSpec.windows.upperBound + 1) }
        #expect(throws: PackingSpec.TextError.overlong) { try PackingSpec.parse("tokens:8", separator: ":", overlong: "wrap") }
        do {
            _ = try PlanRequest(query: "batch_size=4&pack=tokens:\(top + 1)", leasing: false)
            Issue.record("an overlong row length was accepted")
        } catch let error as ServeError {
            #expect(error.message == "query parameter pack: expected \(PackingSpec.expectedFieldAndLength(separator: ":")), got \"tokens:\(top + 1)\"")
        }
    }
}
