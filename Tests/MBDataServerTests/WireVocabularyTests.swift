import Foundation
import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Testing

@testable import MBDataClient
@testable import MBDataServer

/// The protocol's JSON types of `MBDataWire` against a live daemon, and against bodies as
/// the Python client writes them.
@Suite struct WireVocabularyTests {
    static let query = "batch_size=64&seed=7&split=train"

    @Test func everyWireTypeRoundTripsThroughTheDaemon() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            let transport = try HTTPTransport(url: url, token: nil)
            #expect(try await transport.call(.GET, "/healthz", as: HealthStatus.self) == HealthStatus())

            // Descriptions: what the daemon wrote is exactly what the types encode.
            let listBody = try await transport.call(.GET, "/v1/datasets").body
            let list = try WireJSON.decode(DatasetList.self, from: Data(listBody))
            #expect(list.datasets.map(\.name) == ["digits"])
            #expect(list.datasets.first?.schema == nil)
            #expect(Array(try WireJSON.encode(list)) == listBody)
            let oneBody = try await transport.call(.GET, "/v1/datasets/digits").body
            let one = try WireJSON.decode(DatasetDescription.self, from: Data(oneBody))
            #expect(one.samples == list.datasets.first?.samples)
            guard case .object(let schema)? = one.schema else {
                Issue.record("the description of one dataset carries its schema: \(String(decoding: oneBody, as: UTF8.self))")
                return
            }
            #expect(schema["name"] != nil && schema["fields"] != nil)
            #expect(Array(try WireJSON.encode(one)) == oneBody)

            // A cursor document restored, then acked.
            let state = try await transport.call(.GET, "/v1/datasets/digits/cursor?" + Self.query, as: CursorState.self)
            #expect(state.plan == PlanParameters(seed: 7, batchSize: 64, split: "train"))
            var restored = state
            restored.epochs = [.init(epoch: 0, lowWatermark: 2, finishedAbove: [4])]
            let put = try await transport.call(.PUT, "/v1/cursors/\(state.cursor)", json: Array(try WireJSON.encode(restored)), as: CursorState.self)
            #expect(put == restored)
            let acks = "/v1/cursors/\(state.cursor)/acks"
            let acked = try await transport.call(
                .POST, acks, json: Array(try WireJSON.encode(AckRequest.batches(epoch: 0, batches: [3, 2]))), as: CursorState.self)
            #expect(acked.epochs == [.init(epoch: 0, lowWatermark: 5)])
            #expect(try await transport.call(.GET, "/v1/cursors/\(state.cursor)", as: CursorState.self) == acked)

            // The error envelope, byte for byte.
            let (status, _, errorBody) = try await transport.exchange(.POST, acks, json: Array(#"{"epoch": 0}"#.utf8))
            #expect(status == 400)
            let envelope = try WireJSON.decode(ErrorEnvelope.self, from: Data(errorBody))
            #expect(envelope == ErrorEnvelope(code: "invalid_body", message: AckRequest.shapeDescription))
            #expect(Array(try WireJSON.encode(envelope)) == errorBody)

            // Share: a leased batch's lease acked.
            let shareQuery = Self.query + "&group=sharing"
            let leased = try WireDecoder.messages(try await transport.call(.POST, "/v1/datasets/digits/lease?" + shareQuery).body)
            guard case .batch(_, let lease)? = leased.first else {
                Issue.record("a lease answers one batch")
                return
            }
            let share = try await transport.call(.GET, "/v1/datasets/digits/cursor?" + shareQuery + "&mode=share", as: CursorState.self)
            #expect(share.mode == .share)
            let shared = try await transport.call(
                .POST, "/v1/cursors/\(share.cursor)/acks", json: Array(try WireJSON.encode(AckRequest.leases([lease]))), as: CursorState.self)
            #expect(shared.epochs.map { $0.lowWatermark + $0.finishedAbove.count } == [1])

            // A stream with nothing left to send is its end message alone.
            let ended = try await transport.call(.GET, "/v1/datasets/digits/batches?" + Self.query + "&group=ended&start=\(state.batchesPerEpoch)")
            let messages = try WireDecoder.messages(ended.body)
            guard messages.count == 1, case .end(let reason)? = messages.first else {
                Issue.record("expected one end message, got \(messages.count) messages")
                return
            }
            #expect(reason == .complete)
            try await transport.shutdown()
        }
    }

    /// `json.dumps` as `clients/python/mbdata_client` calls it: `", "` and `": "`
    /// separators, keys in the order the dictionary was built.
    @Test func bodiesAsThePythonClientWritesThemDecode() throws {
        func decode<Value: Decodable>(_ type: Value.Type, _ json: String) throws -> Value { try WireJSON.decode(type, from: Data(json.utf8)) }
        #expect(try decode(AckRequest.self, #"{"epoch": 0, "batches": [4, 5]}"#) == .batches(epoch: 0, batches: [4, 5]))
        #expect(try decode(AckRequest.self, #"{"leases": [17, 17]}"#) == .leases([17, 17]))
        #expect(throws: DecodingError.self) { try decode(AckRequest.self, #"{"epoch": 0, "batches": [4], "leases": [17]}"#) }
        let state = try decode(
            CursorState.self,
            #"{"cursor": "c-5f0e8d1a2b3c4d5e", "dataset": "digits", "group": "default", "mode": "replicate", "rank": 1, "replica": 2, "plan": {"seed": 7, "batch_size": 64, "world": 2, "tail": "pad", "split": "train", "shuffle": false}, "plan_fingerprint": "xxh64:9a1c", "dataset_version": 2, "batches_per_epoch": 22, "epochs": [{"epoch": 0, "low_watermark": 5, "acked_above": [7, 9]}, {"epoch": 1, "low_watermark": 0, "acked_above": []}]}"#
        )
        #expect(
            state
                == CursorState(
                    cursor: "c-5f0e8d1a2b3c4d5e", dataset: "digits", group: "default", mode: .replicate, rank: 1, replica: 2,
                    plan: PlanParameters(seed: 7, batchSize: 64, world: 2, tail: .pad, split: "train", shuffle: false), planFingerprint: "xxh64:9a1c",
                    datasetVersion: 2, batchesPerEpoch: 22,
                    epochs: [.init(epoch: 0, lowWatermark: 5, finishedAbove: [7, 9]), .init(epoch: 1)]))
        // A plan over every sample has no split; it stays absent when encoded again.
        let allSamples = try decode(
            CursorState.self,
            #"{"cursor": "c-0", "dataset": "d", "group": "g", "mode": "share", "rank": 0, "replica": 0, "plan": {"seed": 0, "batch_size": 8, "world": 1, "tail": "drop", "shuffle": true}, "plan_fingerprint": "xxh64:0", "dataset_version": 1, "batches_per_epoch": 3, "epochs": []}"#
        )
        #expect(allSamples.plan.split == nil)
        #expect(!String(decoding: try WireJSON.encode(allSamples), as: UTF8.self).contains("split"))
        #expect(try decode(ErrorEnvelope.self, #"{"error": {"code": "cursor_busy", "message": "a stream is open"}}"#).error.code == "cursor_busy")
        #expect(try decode(StreamEnd.self, #"{"reason": "draining", "sent": 3}"#) == StreamEnd(reason: .draining, sent: 3))
    }

    #if os(Linux)
    /// Keep-alive: a source's requests share its pooled connection instead of each opening
    /// one. Counted from the kernel's socket table: each connection to the daemon's port,
    /// open or closed within the last minute (TIME_WAIT), has a client port of its own.
    @Test func acksReuseAKeptAliveConnection() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            let port = try #require(url.split(separator: ":").last.flatMap { Int($0) })
            let source = try ServeSource(url: url, dataset: "digits")
            let configuration = RemoteLoaderTests.configuration()
            let plan = try await source.prepare(configuration, resumingFrom: nil)
            let requests = 40
            for index in 0..<requests {
                try await source.finished(epoch: 0, batch: index % plan.batchesPerEpoch, configuration: configuration)
            }
            let connections = try Self.clientPorts(connectedTo: port)
            try await source.shutdown()
            #expect(!connections.isEmpty)
            #expect(connections.count <= 2, "\(connections.count) connections for \(requests + 2) requests")
        }
    }

    /// The client ports of every TCP connection to or from local `port` in this network
    /// namespace (`/proc/self/net/tcp`, `tcp6`).
    static func clientPorts(connectedTo port: Int) throws -> Set<Int> {
        var ports: Set<Int> = []
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            // Read to the end: procfs files report a size of 0.
            guard let handle = FileHandle(forReadingAtPath: table), let data = try handle.readToEnd() else { continue }
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 2 else { continue }
                func portOf(_ address: Substring) -> Int? { address.split(separator: ":").last.flatMap { Int($0, radix: 16) } }
                guard let local = portOf(fields[1]), let remote = portOf(fields[2]) else { continue }
                if local == port && remote != 0 { ports.insert(remote) }
                if remote == port { ports.insert(local) }
            }
        }
        return ports
    }
    #endif
}
