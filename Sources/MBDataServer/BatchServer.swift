import Foundation
import Hummingbird
import HTTPTypes
import Logging
import MBData
import NIOCore
import ServiceLifecycle
import UnixSignals

/// `mbdata serve`: batches of one or more datasets over HTTP to trainers in any process
/// (schemas/serve-protocol.md). Cursors live in a SQLite state database.
public final class BatchServer: Sendable {
    public let configuration: ServeConfiguration
    let catalog: DatasetCatalog
    let book: CursorBook
    let metrics: ServeMetrics
    let drain = DrainState()
    let streams: StreamRegistry
    let logger: Logger

    public init(configuration: ServeConfiguration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        let metrics = ServeMetrics()
        self.metrics = metrics
        // Opening the state database and the datasets and scanning the spool block.
        (catalog, book) = try await runOnThread {
            let store = try CursorStore(path: configuration.statePath)
            return (try DatasetCatalog(configuration: configuration, store: store), try CursorBook(store: store, metrics: metrics))
        }
        streams = StreamRegistry(limit: configuration.maxStreams, metrics: metrics)
        metrics.register(datasets: configuration.datasets.map(\.name))
    }

    /// Serves until SIGTERM or SIGINT, then drains and returns. `onListening` receives the
    /// bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let port = configuration.port
        let app = Application(
            router: makeRouter(),
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(configuration.headerTimeoutSeconds)))),
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "mbdata"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: app), .init(service: DrainService(drain: drain))],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let names = catalog.names
        let spoolSets = await catalog.spoolSets
        logger.info("serving", metadata: ["datasets": "\(names)", "spool_sets": "\(spoolSets)", "state": "\(configuration.statePath)"])
        try await group.run()
        logger.info("drained; cursors are on disk")
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ServeMiddleware(token: configuration.token.map { Array($0.utf8) }, metrics: metrics))
        router.get("/healthz") { _, _ in
            guard !self.drain.isDraining else { throw ServeError.draining }
            return Self.json(Data(#"{"status":"ok"}"#.utf8))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.exposition())))
        }
        router.get("/v1/datasets") { _, _ in Self.json(try await self.catalog.describeJSON(nil)) }
        router.get("/v1/datasets/:name") { _, context in Self.json(try await self.catalog.describeJSON(Self.parameter("name", context))) }
        router.get("/v1/datasets/:name/batches") { request, context in try await self.stream(request, context) }
        router.get("/v1/datasets/:name/cursor") { request, context in
            try Self.json(await self.resolve(request, context, leasing: request.uri.queryParameters["mode"] == "share").cursor)
        }
        router.post("/v1/datasets/:name/lease") { request, context in try await self.lease(request, context) }
        router.get("/v1/cursors/:id") { _, context in try Self.json(await self.book.state(String(Self.parameter("id", context)))) }
        router.put("/v1/cursors/:id") { request, context in try await self.restore(request, context) }
        router.delete("/v1/cursors/:id") { _, context in
            try await self.book.reset(String(Self.parameter("id", context)))
            return Response(status: .noContent)
        }
        router.post("/v1/cursors/:id/acks") { request, context in try await self.ack(request, context) }
        return router
    }

    // MARK: - Batches

    private struct Resolved {
        var served: DatasetCatalog.Served
        var request: PlanRequest
        var plan: DatasetPlan
        var cursor: CursorState
    }

    private func resolve(_ request: Request, _ context: BasicRequestContext, leasing: Bool) async throws -> Resolved {
        let served = try await catalog.served(Self.parameter("name", context))
        let planRequest = try PlanRequest(query: request.uri.queryParameters, leasing: leasing)
        let plan = try await catalog.plan(dataset: served, group: planRequest.group, parameters: planRequest.parameters)
        let fresh = CursorState(
            cursor: CursorState.id(
                dataset: served.name, group: planRequest.group, mode: planRequest.mode, parameters: planRequest.parameters,
                rank: planRequest.rank, replica: planRequest.replica),
            dataset: served.name, group: planRequest.group, mode: planRequest.mode, rank: planRequest.rank, replica: planRequest.replica,
            plan: planRequest.parameters, planFingerprint: plan.fingerprint, datasetVersion: plan.datasetVersion,
            batchesPerEpoch: plan.plan.batchesPerEpoch, epochs: [])
        return Resolved(served: served, request: planRequest, plan: plan, cursor: try await book.cursor(fresh))
    }

    private func headers(_ resolved: Resolved, spooled: Bool) -> HTTPFields {
        [
            .contentType: "application/vnd.mbdata.stream",
            .mbdataCursor: resolved.cursor.cursor,
            .mbdataPlan: resolved.plan.fingerprint,
            .mbdataDatasetVersion: String(resolved.plan.datasetVersion),
            .mbdataBatchesPerEpoch: String(resolved.plan.plan.batchesPerEpoch),
            .mbdataSource: spooled ? "spool" : "live",
        ]
    }

    /// Partition and replicate: this rank's unacked batches of the epoch, in order.
    private func stream(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard !drain.isDraining else { throw ServeError.draining }
        let resolved = try await resolve(request, context, leasing: false)
        let planRequest = resolved.request
        let progress = resolved.cursor.progress(epoch: planRequest.epoch)
        let items = (min(planRequest.start, resolved.plan.plan.batchesPerEpoch)..<resolved.plan.plan.batchesPerEpoch)
            .filter { !progress.isFinished($0) }
            .map { PlanItem(epoch: planRequest.epoch, batch: $0, rank: planRequest.rank) }
        let (producer, spooled) = try await catalog.producer(
            dataset: resolved.served, plan: resolved.plan, epoch: planRequest.epoch, rank: planRequest.rank)
        let id = resolved.cursor.cursor
        let ticket = try streams.open(cursor: id)
        let prefetcher = OrderedPrefetch(
            count: items.count, workers: configuration.prefetch.workers, depth: configuration.prefetch.depth
        ) { index in try OutgoingBatch.make(items[index], from: producer) }
        var headers = headers(resolved, spooled: spooled)
        headers[.mbdataRemaining] = String(items.count)
        let logger = self.logger
        var streamLogger = logger
        streamLogger[metadataKey: "cursor"] = "\(id)"
        streamLogger[metadataKey: "dataset"] = "\(resolved.served.name)"
        streamLogger[metadataKey: "epoch"] = "\(planRequest.epoch)"
        streamLogger[metadataKey: "rank"] = "\(planRequest.rank)"
        let send = StreamSender(
            prefetcher: prefetcher, cursor: id, dataset: resolved.served.name, mode: planRequest.mode, book: book, metrics: metrics,
            drain: drain, logger: streamLogger)
        let book = self.book
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                await send.run(&writer)
                await book.endStream(id)
                withExtendedLifetime(ticket) {}
            })
    }

    /// Share: lease the group's next free batch to this consumer.
    private func lease(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard !drain.isDraining else { throw ServeError.draining }
        let resolved = try await resolve(request, context, leasing: true)
        let planRequest = resolved.request
        let id = resolved.cursor.cursor
        let allocator = ByteBufferAllocator()
        switch try await book.lease(id, epoch: planRequest.epoch, seconds: planRequest.leaseSeconds) {
        case .complete:
            return Response(
                status: .ok, headers: headers(resolved, spooled: false),
                body: .init(byteBuffer: WireMessage.end(reason: "complete", sent: 0, allocator: allocator)))
        case .wait(let seconds):
            var headers = headers(resolved, spooled: false)
            headers[.contentType] = nil
            headers[.retryAfter] = String(Int(seconds.rounded(.up)))
            return Response(status: .noContent, headers: headers)
        case .leased(let batch, let lease):
            let item = PlanItem(epoch: planRequest.epoch, batch: batch, rank: planRequest.rank)
            do {
                let (producer, spooled) = try await catalog.producer(
                    dataset: resolved.served, plan: resolved.plan, epoch: planRequest.epoch, rank: planRequest.rank)
                let outgoing = try await runOnThread { try OutgoingBatch.make(item, from: producer, lease: lease) }
                metrics.served(
                    dataset: resolved.served.name, mode: .share, frameBytes: outgoing.frameBytes, uncompressedBytes: outgoing.uncompressedBytes)
                return Response(status: .ok, headers: headers(resolved, spooled: spooled), body: .init(byteBuffer: outgoing.message))
            } catch {
                await book.release(lease: lease)
                throw error
            }
        }
    }

    // MARK: - Cursors

    private struct AckBody: Decodable {
        var epoch: Int?
        var batches: [Int]?
        var leases: [UInt64]?
    }

    private func ack(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = String(Self.parameter("id", context))
        let body: AckBody = try await Self.decodeBody(request)
        if let leases = body.leases {
            return try Self.json(await book.ack(id, leases: leases))
        }
        guard let epoch = body.epoch, let batches = body.batches, epoch >= 0 else {
            throw ServeError(.badRequest, "invalid_body", "an ack is {\"epoch\": E, \"batches\": [...]} or {\"leases\": [...]}")
        }
        return try Self.json(await book.ack(id, epoch: epoch, batches: batches))
    }

    private func restore(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = String(Self.parameter("id", context))
        var state: CursorState = try await Self.decodeBody(request)
        try state.validate()
        state.epochs.sort { $0.epoch < $1.epoch }
        for index in state.epochs.indices { state.epochs[index].ackedAbove.sort() }
        guard state.cursor == id, state.key == id else {
            throw ServeError(.conflict, "cursor_mismatch", "the state names cursor \(state.cursor), its parameters make \(state.key), the URL says \(id)")
        }
        let served = try await catalog.served(Substring(state.dataset))
        let plan = try await catalog.plan(dataset: served, group: state.group, parameters: state.plan, preferring: state.datasetVersion)
        guard plan.fingerprint == state.planFingerprint, plan.plan.batchesPerEpoch == state.batchesPerEpoch else {
            throw ServeError(
                .conflict, "cursor_mismatch",
                "the saved cursor is for plan \(state.planFingerprint) at dataset version \(state.datasetVersion); this daemon resolves it to \(plan.fingerprint) at version \(plan.datasetVersion)")
        }
        try await book.restore(state)
        return try Self.json(state)
    }

    // MARK: - Helpers

    static func parameter(_ name: String, _ context: BasicRequestContext) -> Substring {
        context.parameters.get(name).map { Substring($0) } ?? ""
    }

    static func json(_ data: Data) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ state: CursorState) throws -> Response { json(try CursorState.encoder.encode(state)) }

    static func decodeBody<T: Decodable>(_ request: Request) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: ServeLimits.maxBodyBytes)
        do {
            return try CursorState.decoder.decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw ServeError(.badRequest, "invalid_body", "the request body is not the expected JSON: \(error)")
        }
    }
}
