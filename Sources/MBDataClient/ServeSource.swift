import AsyncHTTPClient
import Foundation
import MBDataTraining
import MBDataWire
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
///
/// The source keeps its connections to the daemon open between requests (HTTP keep-alive)
/// and speaks TLS to an `https` URL. Its connections close when it is released, or at once
/// with ``shutdown()``.
public final class ServeSource: RemoteBatchSource {
    /// How long the source waits for the daemon.
    public struct Timeouts: Sendable {
        /// The longest a connection may take to open. Default 10 seconds.
        public var connect: Duration
        /// The longest the daemon may stay silent while an answer or a stream is due,
        /// including while the loader holds back a stream it cannot take yet. Default
        /// 60 seconds, the daemon's own `--stall-timeout`: it cuts a reader that stalls longer.
        public var read: Duration

        /// Timeouts; the defaults suit a daemon on the same network.
        public init(connect: Duration = .seconds(10), read: Duration = .seconds(60)) {
            self.connect = connect
            self.read = read
        }
    }

    /// The dataset's name on the daemon (what `mbdata serve NAME=path` called it).
    public let dataset: String
    /// The consumer group: loaders of one training run share a group, and the daemon keeps
    /// one cursor per group and rank.
    public let group: String
    /// Reconnections after a cut or a draining daemon before a stream gives up. Default 20.
    public let reconnects: Int
    let transport: HTTPTransport
    private let cursor = Mutex<String?>(nil)
    private let acks = Mutex(AckQueue())

    /// A source for `dataset` on the daemon at `url`; nothing is sent until the loader
    /// prepares it.
    ///
    /// - Parameters:
    ///   - url: The daemon's base URL, `http://host:port` or `https://host:port`.
    ///   - dataset: The dataset's name on the daemon.
    ///   - group: The consumer group. Default `default`.
    ///   - token: The bearer token, when the daemon was started with `--token-file`.
    ///   - reconnects: Reconnections a stream may make after a cut or a draining daemon. Default 20.
    ///   - timeouts: How long to wait for a connection and for the daemon's answers.
    /// - Throws: `MBDataError` with `.invalidArgument` when `url` is not such a URL.
    public init(
        url: String, dataset: String, group: String = "default", token: String? = nil, reconnects: Int = 20, timeouts: Timeouts = .init()
    ) throws {
        transport = try HTTPTransport(url: url, token: token, timeouts: timeouts)
        self.dataset = dataset
        self.group = group
        self.reconnects = reconnects
    }

    /// Closes the source's connections now rather than when it is released; requests after
    /// it fail.
    public func shutdown() async throws {
        try await transport.shutdown()
    }

    private func query(_ configuration: MultiBatchLoader.Configuration, extra: [(String, String)] = []) -> String {
        let items = PlanQuery(plan: configuration.plan, rank: configuration.rank, group: group).items + extra
        var components = URLComponents()
        components.queryItems = items.map { URLQueryItem(name: $0.0, value: $0.1) }
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
        let state = try await transport.call(.GET, datasetPath + "/cursor?" + query(configuration), as: CursorState.self)
        cursor.withLock { $0 = state.cursor }
        if let checkpoint {
            guard checkpoint.planFingerprint == state.planFingerprint, checkpoint.datasetVersion == state.datasetVersion else {
                throw MBDataError(
                    .invalidArgument,
                    "the checkpoint is for plan \(checkpoint.planFingerprint) at dataset version \(checkpoint.datasetVersion); the daemon serves \(state.planFingerprint) at version \(state.datasetVersion)",
                    source: datasetPath)
            }
            var restored = state
            restored.epochs =
                (checkpoint.firstEpoch..<checkpoint.firstEpoch + checkpoint.completedEpochs).map {
                    LoaderCheckpoint.EpochCursor(epoch: $0, lowWatermark: checkpoint.batchesPerEpoch)
                } + checkpoint.inProgress
            _ = try await transport.call(.PUT, "/v1/cursors/\(state.cursor)", json: Array(try WireJSON.encode(restored)))
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
        var next = 0
        var attempts = 0
        while true {
            let target = datasetPath + "/batches?" + query(configuration, extra: [("epoch", "\(epoch)"), ("start", "\(next)")])
            var decoder = WireDecoder(source: target)
            var end: StreamEnd.Reason?
            do {
                let response = try await transport.send(.GET, target)
                if response.status == .ok {
                    // Chunk by chunk: the decoder holds at most one message, never the epoch.
                    for try await chunk in response.body {
                        decoder.append(chunk)
                        while let message = try decoder.next() {
                            switch message {
                            case .batch(let batch, _):
                                try await deliver(batch)
                                next = batch.batch + 1
                            case .end(let reason): end = reason
                            case .failure(let error): throw error
                            }
                        }
                    }
                } else {
                    let body = try await response.body.collect(upTo: WireDecoder.maxJSONPayload)
                    guard response.status == .serviceUnavailable else {
                        throw HTTPTransport.error(status: Int(response.status.code), body: Array(body.readableBytesView), target: target)
                    }
                }
            } catch let error as MBDataError {
                throw error
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                // The connection was refused, reset or cut (a daemon restarting): reconnect below.
            }
            if end == .complete { return }
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
                try await ack("/v1/cursors/\(id)/acks", Array(try WireJSON.encode(AckRequest.batches(epoch: epoch, batches: batches))))
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
