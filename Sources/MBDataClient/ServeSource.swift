import Foundation
import MBDataTraining
import NIOCore
import NIOHTTP1
import Synchronization

/// An `mbdata serve` daemon as a `MultiBatchLoader` source: the loader streams its rank's
/// partition and acks each batch a trainer finished, so the daemon's cursor follows the
/// loader's checkpoint.
///
/// ```swift
/// let source = try ServeSource(url: "http://127.0.0.1:7070", dataset: "digits")
/// let loader = try await MultiBatchLoader(remote: source, configuration: config)
/// ```
public final class ServeSource: RemoteBatchSource {
    /// The dataset's name on the daemon (what `mbdata serve NAME=path` called it).
    public let dataset: String
    /// The consumer group: loaders of one training run share a group, and the daemon keeps
    /// one cursor per group and rank.
    public let group: String
    /// Reconnections after a cut or a draining daemon before a stream gives up. Default 20.
    public let reconnects: Int
    private let transport: HTTPTransport
    private let cursor = Mutex<String?>(nil)
    private let acks = Mutex(AckQueue())

    /// A source for `dataset` on the daemon at `url`; nothing is sent until the loader
    /// prepares it.
    ///
    /// - Parameters:
    ///   - url: The daemon's base URL, `http://host:port`.
    ///   - dataset: The dataset's name on the daemon.
    ///   - group: The consumer group. Default `default`.
    ///   - token: The bearer token, when the daemon was started with `--token-file`.
    ///   - reconnects: Reconnections a stream may make after a cut or a draining daemon. Default 20.
    /// - Throws: `MBDataError` with `.invalidArgument` when `url` is not such a URL.
    public init(url: String, dataset: String, group: String = "default", token: String? = nil, reconnects: Int = 20) throws {
        transport = try HTTPTransport(url: url, token: token)
        self.dataset = dataset
        self.group = group
        self.reconnects = reconnects
    }

    private struct CursorReply: Codable {
        var cursor: String
        var planFingerprint: String
        var datasetVersion: Int
        var batchesPerEpoch: Int
    }

    private func query(_ configuration: MultiBatchLoader.Configuration, extra: [(String, String)] = []) -> String {
        var items: [(String, String)] = [
            ("batch_size", "\(configuration.batchSize)"), ("seed", "\(configuration.seed)"), ("world", "\(configuration.world)"),
            ("rank", "\(configuration.rank)"), ("tail", configuration.tail.rawValue), ("shuffle", "\(configuration.shuffle)"), ("group", group),
        ]
        if let split = configuration.split { items.append(("split", split)) }
        var components = URLComponents()
        components.queryItems = (items + extra).map { URLQueryItem(name: $0.0, value: $0.1) }
        return components.percentEncodedQuery ?? ""
    }

    private var datasetPath: String { "/v1/datasets/" + (dataset.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? dataset) }

    /// Asks the daemon for the cursor of this group and rank under `configuration`'s plan,
    /// then restores it to `checkpoint` (or resets it when nil).
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` when the configuration pads fields or has
    ///   a sample transform (the daemon prepares the batches), or when the daemon refuses the
    ///   request (400, 404, 409: an unknown dataset, a checkpoint of another plan);
    ///   `.unavailable` when the daemon cannot be reached or fails (5xx).
    public func prepare(_ configuration: MultiBatchLoader.Configuration, resumingFrom checkpoint: LoaderCheckpoint?) async throws -> RemotePlan {
        guard configuration.padLengths.isEmpty, configuration.sampleTransform == nil else {
            throw MBDataError(.invalidArgument, "a serve source cannot pad fields or run sample transforms: the daemon prepares the batches")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let reply = try await transport.call(.GET, datasetPath + "/cursor?" + query(configuration))
        let state = try decoder.decode(CursorReply.self, from: Data(reply.body))
        cursor.withLock { $0 = state.cursor }
        if let checkpoint {
            guard checkpoint.planFingerprint == state.planFingerprint, checkpoint.datasetVersion == state.datasetVersion else {
                throw MBDataError(
                    .invalidArgument,
                    "the checkpoint is for plan \(checkpoint.planFingerprint) at dataset version \(checkpoint.datasetVersion); the daemon serves \(state.planFingerprint) at version \(state.datasetVersion)",
                    source: datasetPath)
            }
            guard var object = try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] else {
                throw MBDataError(.corruptData, "the daemon's cursor is not a JSON object", source: datasetPath)
            }
            let complete = (checkpoint.firstEpoch..<checkpoint.firstEpoch + checkpoint.completedEpochs).map {
                ["epoch": $0, "low_watermark": checkpoint.batchesPerEpoch, "acked_above": [Int]()] as [String: Any]
            }
            let partial = checkpoint.inProgress.map { ["epoch": $0.epoch, "low_watermark": $0.lowWatermark, "acked_above": $0.finishedAbove] as [String: Any] }
            object["epochs"] = complete + partial
            _ = try await transport.call(.PUT, "/v1/cursors/\(state.cursor)", json: Array(try JSONSerialization.data(withJSONObject: object)))
        } else {
            _ = try await transport.call(.DELETE, "/v1/cursors/\(state.cursor)")
        }
        return RemotePlan(fingerprint: state.planFingerprint, datasetVersion: state.datasetVersion, batchesPerEpoch: state.batchesPerEpoch)
    }

    /// Streams this rank's unfinished batches of `epoch`, reconnecting after a cut or a
    /// draining daemon up to ``reconnects`` times.
    ///
    /// - Throws: `MBDataError` with `.unavailable` when the daemon fails the stream or it was
    ///   cut too often; `.corruptData` when a message is malformed; what `deliver` throws.
    public func stream(
        epoch: Int, configuration: MultiBatchLoader.Configuration, deliver: @Sendable (ReadyBatch) async throws -> Void
    ) async throws {
        /// What one connection received; the transport's callbacks fill it in.
        struct Attempt {
            var status = 0
            var errorBody: [UInt8] = []
            var decoder: WireDecoder
            var end: String?
        }
        let next = Mutex(0)
        var attempts = 0
        while true {
            let target = datasetPath + "/batches?" + query(configuration, extra: [("epoch", "\(epoch)"), ("start", "\(next.withLock { $0 })")])
            let attempt = Mutex(Attempt(decoder: WireDecoder(source: target)))
            do {
                try await transport.send(
                    .GET, target, head: { head in attempt.withLock { $0.status = head.status } },
                    body: { chunk in
                        let accepted = attempt.withLock { attempt in
                            guard attempt.status == 200 else {
                                attempt.errorBody.append(contentsOf: chunk.readableBytesView)
                                return false
                            }
                            attempt.decoder.append(chunk)
                            return true
                        }
                        guard accepted else { return }
                        while let message = try attempt.withLock({ try $0.decoder.next() }) {
                            switch message {
                            case .batch(let batch, _):
                                try await deliver(batch)
                                next.withLock { $0 = batch.batch + 1 }
                            case .end(let reason): attempt.withLock { $0.end = reason }
                            case .failure(let error): throw error
                            }
                        }
                    })
            } catch let error as MBDataError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // The connection was refused, reset or cut (a daemon restarting): reconnect below.
            }
            let (code, body, end) = attempt.withLock { ($0.status, $0.errorBody, $0.end) }
            if code != 200 && code != 0 && code != 503 {
                throw HTTPTransport.error(status: code, body: body, target: target)
            }
            if end == "complete" { return }
            attempts += 1
            guard attempts <= reconnects else {
                throw MBDataError(.unavailable, "the stream was cut \(attempts) times; giving up", source: target)
            }
            try await Task.sleep(for: .milliseconds(100 * min(attempts, 10)))
        }
    }

    /// Acks each finished batch. While one call is sending, batches that finish meanwhile
    /// queue and that call sends them too, several to a request; the others return at once.
    /// Every ack is sent before the loader's `run` returns (the sending call is one of its
    /// trainer tasks); a failed request fails that call and stops the loader.
    public func finished(epoch: Int, batch: Int, configuration: MultiBatchLoader.Configuration) async throws {
        guard let id = cursor.withLock({ $0 }) else { throw MBDataError(.invalidArgument, "the source was not prepared") }
        let sends = acks.withLock { queue in
            queue.batches[epoch, default: []].append(batch)
            defer { queue.sending = true }
            return !queue.sending
        }
        guard sends else { return }
        do {
            while let (epoch, batches) = acks.withLock({ $0.takeEarliestEpoch() }) {
                let list = batches.map(String.init).joined(separator: ",")
                try await ack("/v1/cursors/\(id)/acks", Array(#"{"epoch":\#(epoch),"batches":[\#(list)]}"#.utf8))
            }
        } catch {
            acks.withLock { $0.sending = false }
            throw error
        }
    }

    /// Sends one ack; a `503` (the daemon could not write its state, or is draining) changed
    /// nothing on the daemon, so the same body is sent again, up to `reconnects` times.
    private func ack(_ target: String, _ body: [UInt8]) async throws {
        var attempts = 0
        while true {
            let (status, reply) = try await transport.exchange(.POST, target, json: body)
            if (200..<300).contains(status) { return }
            attempts += 1
            guard status == 503, attempts <= reconnects else { throw HTTPTransport.error(status: status, body: reply, target: target) }
            try await Task.sleep(for: .milliseconds(100 * min(attempts, 10)))
        }
    }

    /// Acks waiting to be sent, by epoch, and whether a call is sending them.
    private struct AckQueue {
        var batches: [Int: [Int]] = [:]
        var sending = false

        /// The earliest epoch's queued batches; nil, and no longer sending, when none are left.
        mutating func takeEarliestEpoch() -> (Int, [Int])? {
            guard let epoch = batches.keys.min(), let taken = batches.removeValue(forKey: epoch) else {
                sending = false
                return nil
            }
            return (epoch, taken)
        }
    }
}
