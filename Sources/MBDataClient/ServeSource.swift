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
///
/// Given several daemons that share their state (``init(urls:dataset:group:token:reconnects:timeouts:)``,
/// or `MBDATA_URLS`), the source uses the first — the local daemon — and, when it fails (no
/// connection, a reset, a timeout, a cut stream, a `503`), moves to the next, round robin:
/// each daemon of a round at once, a backoff between rounds. The stream reopens from the
/// shared cursor after the last batch it delivered, and acks that found their daemon gone
/// are sent to the next (acks are idempotent), so no batch is lost and none is delivered
/// twice.
public final class ServeSource: RemoteBatchSource {
    /// How long the source waits for the daemon.
    public struct Timeouts: Sendable {
        /// The longest a connection may take to open. Default 10 seconds.
        public var connect: Duration
        /// The longest the daemon may stay silent while an answer or a stream is due,
        /// including while the loader holds back a stream it cannot take yet. Default
        /// 60 seconds, the daemon's own `--stall-timeout`: it cuts a reader that stalls longer.
        public var read: Duration

        /// The longest one request or stream keeps trying daemons after failures, before
        /// it gives up with `.unavailable`. Default 120 seconds.
        public var giveUpAfter: Duration

        /// Timeouts; the defaults suit a daemon on the same network.
        public init(connect: Duration = .seconds(10), read: Duration = .seconds(60), giveUpAfter: Duration = .seconds(120)) {
            self.connect = connect
            self.read = read
            self.giveUpAfter = giveUpAfter
        }
    }

    /// The dataset's name on the daemon (what `mbdata serve NAME=path` called it); for a
    /// mixture source, `mix:` and its sources' names (the daemon's cursors call it so).
    public let dataset: String
    /// The mixture of served datasets the source reads (`/v1/mixture/…?mix=…`, protocol
    /// 1.2); nil for one dataset. Batches carry `_source` (int32 `[B]`: each row's index in
    /// ``MixtureQuery/sources``, -1 on padding rows) and the names in their `sources` metadata.
    public let mixture: MixtureQuery?
    /// The consumer group: loaders of one training run share a group, and the daemon keeps
    /// one cursor per group and rank.
    public let group: String
    /// Rounds over the daemons a failed request or stream is tried again (after a cut, a
    /// draining daemon, no connection) before it gives up. Default 20.
    public let reconnects: Int
    /// How the daemon packs a variable-length field of the plan into rows (`pack=FIELD:L`);
    /// nil for unpacked batches. A packed plan's epochs differ in rows: the loader serves
    /// each epoch as many batches as the shortest of its configured epochs packs into, as
    /// `MultiBatchLoader(dataset:packing:configuration:)` does, and leaves the rest of a
    /// longer epoch unacked on the daemon.
    public let packing: PackingSpec?
    /// Every daemon's URL, path and query dropped, in order of preference.
    public var urls: [String] { transport.bases }
    let transport: HTTPTransport
    private let cursor = Mutex<String?>(nil)
    private let acks = Mutex(AckQueue())
    /// The batches of an epoch the loader takes when fewer than the daemon has (a packed
    /// plan's longer epochs), asked for with the stream's `end`; nil to take every one.
    private let limit = Mutex<Int?>(nil)

    /// A source for `dataset` on the daemon at `url`; nothing is sent until the loader
    /// prepares it.
    ///
    /// - Parameters:
    ///   - url: The daemon's base URL, `http://host:port` or `https://host:port`; several,
    ///     separated by commas, as ``init(urls:dataset:group:token:reconnects:timeouts:)`` takes them.
    ///   - dataset: The dataset's name on the daemon.
    ///   - group: The consumer group. Default `default`.
    ///   - token: The bearer token, when the daemon was started with `--token-file`.
    ///   - reconnects: Rounds over the daemons a failed request or stream may make. Default 20.
    ///   - timeouts: How long to wait for a connection and for the daemon's answers.
    /// - Throws: `MBDataError` with `.invalidArgument` when `url` is not such a URL.
    ///   - packing: How the daemon packs the plan's rows; nil (default) for unpacked batches.
    public convenience init(
        url: String, dataset: String, group: String = "default", token: String? = nil, reconnects: Int = 20, timeouts: Timeouts = .init(),
        packing: PackingSpec? = nil
    ) throws {
        try self.init(
            urls: url.split(separator: ",").map(String.init), dataset: dataset, group: group, token: token, reconnects: reconnects,
            timeouts: timeouts, packing: packing)
    }

    /// A source for `dataset` on several daemons that share their state, in order of
    /// preference (the local daemon first); nothing is sent until the loader prepares it.
    ///
    /// - Parameters:
    ///   - urls: The daemons' base URLs; nil reads `MBDATA_URLS` (comma-separated), else
    ///     `MBDATA_URL`, else `http://127.0.0.1:7070`.
    ///   - dataset: The dataset's name on the daemons.
    ///   - group: The consumer group. Default `default`.
    ///   - token: The bearer token, when the daemons were started with `--token-file`.
    ///   - reconnects: Rounds over the daemons a failed request or stream may make. Default 20.
    ///   - timeouts: How long to wait for a connection, for the daemon's answers, and for
    ///     some daemon to answer after failures.
    ///   - packing: How the daemon packs the plan's rows; nil (default) for unpacked batches.
    /// - Throws: `MBDataError` with `.invalidArgument` when no URL is given or one is not such a URL.
    public init(
        urls: [String]? = nil, dataset: String, group: String = "default", token: String? = nil, reconnects: Int = 20,
        timeouts: Timeouts = .init(), packing: PackingSpec? = nil
    ) throws {
        let given = (urls ?? Self.environmentURLs()).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        transport = try HTTPTransport(urls: given, token: token, timeouts: timeouts, rounds: reconnects)
        self.dataset = dataset
        self.group = group
        self.reconnects = reconnects
        self.packing = packing
        mixture = nil
    }

    /// A source for a mixture of datasets served by the daemon(s) at `url` (several
    /// separated by commas); nothing is sent until the loader prepares it.
    ///
    /// ```swift
    /// let source = try ServeSource(url: "http://127.0.0.1:7070", mixture: [.init(name: "web", weight: 0.6), .init(name: "code", weight: .repeat(2))])
    /// ```
    ///
    /// - Parameters:
    ///   - mixture: The served datasets by name, with their weights, in `_source` order (a
    ///     component's dataset, if it has one, is not read: the daemon reads its own).
    ///   - epochSize: Draws per epoch (proportion weights; default the sources' sizes summed).
    ///   - packing: How the daemon packs the mixture's rows (its draws, in epoch order, are
    ///     the packer's input; each segment carries `_source` and `_id`); nil (default) for
    ///     unpacked batches.
    ///   - The others: as ``init(url:dataset:group:token:reconnects:timeouts:packing:)``.
    /// - Throws: `MBDataError` with `.invalidArgument` when no URL is given or one is not such
    ///   a URL, or the mixture has no source.
    public init(
        url: String? = nil, mixture: [MixtureComponent], epochSize: Int? = nil, group: String = "default", token: String? = nil,
        reconnects: Int = 20, timeouts: Timeouts = .init(), packing: PackingSpec? = nil
    ) throws {
        guard !mixture.isEmpty else { throw MBDataError(.invalidArgument, "a mixture needs at least one source", parameter: "mixture") }
        let given = (url.map { $0.split(separator: ",").map(String.init) } ?? Self.environmentURLs())
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        transport = try HTTPTransport(urls: given, token: token, timeouts: timeouts, rounds: reconnects)
        let query = MixtureQuery(components: mixture, epochSize: epochSize)
        self.mixture = query
        dataset = "mix:" + query.sources.map(\.name).joined(separator: ",")
        self.group = group
        self.reconnects = reconnects
        self.packing = packing
    }

    /// `MBDATA_URLS` split at commas, else `MBDATA_URL`, else `http://127.0.0.1:7070`.
    static func environmentURLs(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        let value = [environment["MBDATA_URLS"], environment["MBDATA_URL"]].compactMap { $0 }.first { !$0.isEmpty }
        return (value ?? "http://127.0.0.1:7070").split(separator: ",").map(String.init)
    }

    /// Closes the source's connections now rather than when it is released; requests after
    /// it fail.
    public func shutdown() async throws {
        try await transport.shutdown()
    }

    private func query(_ configuration: MultiBatchLoader.Configuration, extra: [(String, String)] = []) -> String {
        let items = PlanQuery(plan: configuration.plan, rank: configuration.rank, group: group, packing: packing, mixture: mixture).items + extra
        var components = URLComponents()
        components.queryItems = items.map { URLQueryItem(name: $0.0, value: $0.1) }
        return components.percentEncodedQuery ?? ""
    }

    private var datasetPath: String {
        guard mixture == nil else { return "/v1/mixture" }
        return "/v1/datasets/" + (dataset.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? dataset)
    }

    /// Asks the daemon for the cursor of this group and rank under `configuration`'s plan,
    /// then restores it to `checkpoint` (or resets it when nil).
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` when the configuration pads fields or has
    ///   a sample transform (the daemon prepares the batches), names a mixture or a packing
    ///   other than the source's, or when the daemon refuses the
    ///   request (400, 404, 409: an unknown dataset, a checkpoint of another plan);
    ///   `.unavailable` when the daemon cannot be reached or fails (5xx).
    public func prepare(_ configuration: MultiBatchLoader.Configuration, resumingFrom checkpoint: LoaderCheckpoint?) async throws -> RemotePlan {
        guard configuration.padLengths.isEmpty, configuration.sampleTransform == nil else {
            throw MBDataError(.invalidArgument, "a serve source cannot pad fields or run sample transforms: the daemon prepares the batches")
        }
        if !configuration.mixture.isEmpty, MixtureQuery(components: configuration.mixture, epochSize: configuration.epochSize) != mixture {
            throw MBDataError(
                .invalidArgument, "the configuration's mixture is not the serve source's: give the mixture to ServeSource(url:mixture:epochSize:)",
                parameter: "MultiBatchLoader.Configuration.mixture")
        }
        if let configured = configuration.packing, configured != packing {
            throw MBDataError(
                .invalidArgument, "the configuration's packing is not the serve source's: give the packing to the ServeSource (its packing: argument)",
                parameter: "MultiBatchLoader.Configuration.packing")
        }
        let state = try await transport.call(.GET, datasetPath + "/cursor?" + query(configuration), as: CursorState.self)
        cursor.withLock { $0 = state.cursor }
        let batchesPerEpoch = try await servedBatches(configuration, state: state)
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
                    LoaderCheckpoint.EpochCursor(epoch: $0, lowWatermark: min(checkpoint.batchesPerEpoch, batchesPerEpoch))
                } + checkpoint.inProgress
            _ = try await transport.call(.PUT, "/v1/cursors/\(state.cursor)", json: Array(try WireJSON.encode(restored)))
        } else {
            _ = try await transport.call(.DELETE, "/v1/cursors/\(state.cursor)")
        }
        limit.withLock { $0 = packing == nil ? nil : batchesPerEpoch }
        return RemotePlan(
            fingerprint: state.planFingerprint, datasetVersion: state.datasetVersion, batchesPerEpoch: batchesPerEpoch, mixture: state.mixture)
    }

    /// The batches the loader takes of each epoch: the cursor's, or for a packed plan the
    /// fewest of any configured epoch (the `MBData-Batches-Per-Epoch` of each epoch's cursor
    /// request).
    private func servedBatches(_ configuration: MultiBatchLoader.Configuration, state: CursorState) async throws -> Int {
        guard packing != nil else { return state.batchesPerEpoch }
        var fewest = state.batchesPerEpoch
        for epoch in configuration.epochs {
            let target = datasetPath + "/cursor?" + query(configuration, extra: [("epoch", "\(epoch)")])
            let headers = try await transport.callWithHeaders(.GET, target, as: CursorState.self).headers
            guard let count = headers.first(name: "MBData-Batches-Per-Epoch").flatMap(Int.init), count >= 0 else {
                throw MBDataError(.corruptData, "the daemon's cursor answer has no MBData-Batches-Per-Epoch count", source: target)
            }
            fewest = min(fewest, count)
        }
        return fewest
    }

    /// Streams this rank's unfinished batches of `epoch`. A stream that is cut, ends
    /// draining, cannot be opened or is answered `503` reopens on the next daemon (at once;
    /// after a backoff once every daemon failed in a round), after the last batch it
    /// delivered; the daemon skips what the cursor has acked. `409 cursor_busy` — the
    /// cursor's previous stream, as the last epoch's, not yet closed on the daemon — is
    /// asked again of the same daemon after the backoff: ``busyRetries`` times when the
    /// stream is first opened, as often as anything else when it reopens. It gives up after
    /// ``reconnects`` rounds without a batch, or ``Timeouts/giveUpAfter``.
    ///
    /// - Throws: `MBDataError` with `.unavailable` when the daemon fails the stream or no
    ///   daemon could serve it; `.corruptData` when a message is malformed; what `deliver` throws.
    public func stream(
        epoch: Int, configuration: MultiBatchLoader.Configuration, deliver: @Sendable (ReadyBatch) async throws -> Void
    ) async throws {
        var next = 0
        var tries = transport.tries("GET \(datasetPath)/batches")
        let limit = self.limit.withLock { $0 }
        var reopening = false
        while true {
            let bounds = [("epoch", "\(epoch)"), ("start", "\(next)")] + (limit.map { [("end", "\($0)")] } ?? [])
            let target = datasetPath + "/batches?" + query(configuration, extra: bounds)
            let daemon = transport.base
            var decoder = WireDecoder(source: target)
            var end: StreamEnd.Reason?
            let failure: any Error
            var move = true
            do {
                let response = try await transport.send(.GET, target, to: daemon)
                if response.status == .ok {
                    // Chunk by chunk: the decoder holds at most one message, never the epoch.
                    for try await chunk in response.body {
                        decoder.append(chunk)
                        while let message = try decoder.next() {
                            switch message {
                            case .batch(let batch, _):
                                try await deliver(batch)
                                next = batch.batch + 1
                                tries = transport.tries("GET \(datasetPath)/batches")
                            case .end(let reason): end = reason
                            case .failure(let error): throw error
                            }
                        }
                    }
                    if end == .complete { return }
                    failure = DaemonTries.StreamInterrupted(description: end == nil ? "the stream was cut" : "the stream ended draining")
                } else {
                    let body = Array(try await response.body.collect(upTo: WireDecoder.maxJSONPayload).readableBytesView)
                    let error = HTTPTransport.error(status: Int(response.status.code), body: body, target: target)
                    let busy =
                        response.status == .conflict && ErrorEnvelope.detail(in: body)?.code == "cursor_busy"
                        && tries.rounds < (reopening ? transport.rounds : min(Self.busyRetries, transport.rounds))
                    guard response.status == .serviceUnavailable || busy else { throw error }
                    failure = error
                    move = !busy
                }
            } catch let error as MBDataError {
                throw error
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                failure = error  // refused, reset or cut (a daemon gone): the next daemon below
            }
            try await tries.failed(daemon, failure, move: move)
            // A cut stream or a failed daemon: a claim it held may take a while to lapse.
            if move { reopening = true }
        }
    }

    /// How often a stream's first opening asks again after `409 cursor_busy`.
    static let busyRetries = 3

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

    /// Sends one ack. A connection failure or a `503` sends the same body to the next
    /// daemon (``HTTPTransport/exchange(_:_:json:)``): an ack is idempotent, so one that had
    /// reached the daemon that failed is harmless the second time.
    private func ack(_ target: String, _ body: [UInt8]) async throws {
        _ = try await transport.call(.POST, target, json: body)
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
