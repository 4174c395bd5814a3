import Foundation
import Hummingbird
import HTTPTypes
import Logging
import MBData
import MBDataOrigin
import MBDataWire
import NIOCore
import ServiceLifecycle

/// `mbdata serve`: batches of one or more datasets over HTTP to trainers in any process
/// (schemas/serve-protocol.md). Cursors, pins and leases live in a `StateStore`: a SQLite
/// file of this daemon, or a PostgreSQL database several daemons share.
///
/// A service-lifecycle `Service`: run it in a `ServiceGroup` — the application's own, next
/// to its other services — which owns the signals. A graceful shutdown drains: open
/// streams end after the message in flight, then `run()` returns — within
/// ``ServeConfiguration/shutdownTimeoutSeconds``, past which every connection still open is
/// closed.
public final class BatchServer: Service, Sendable {
    /// The configuration the server was made with.
    public let configuration: ServeConfiguration
    let catalog: DatasetCatalog
    let book: CursorBook
    /// Where cursors, pins, leases and stream claims live.
    let store: any StateStore
    /// This daemon's name in the claims it takes in the store: random, made at start.
    let holder = "\(ProcessInfo.processInfo.processIdentifier)-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    /// Where inference jobs keep their progress, leases and outputs.
    let inference: any OutputStore
    let metrics: ServeMetrics
    let drain = DrainState()
    let streams: StreamRegistry
    let logger: Logger
    /// The shard sets of HTTP origins, when `configuration.spool` names any.
    let origins: ShardOrigins?
    private let onListening: @Sendable (Int) -> Void

    /// Opens the state database and every dataset and scans the spool, off the cooperative
    /// pool; nothing listens until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: Datasets, address, limits and timeouts.
    ///   - logger: Where requests, streams and failures are logged (structured metadata).
    ///   - onListening: Receives the bound port once ``run()`` listens (useful with port 0).
    /// - Throws: `MBDataError` when the state database cannot be opened or written
    ///   (`.storage`), a dataset cannot be opened
    ///   (`.invalidDataset`), or a spool cannot be read.
    public convenience init(
        configuration: ServeConfiguration, logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        try await self.init(configuration: configuration, logger: logger, clock: .continuous, onListening: onListening)
    }

    /// A server whose leases expire on `clock` (tests move a manual one).
    package init(
        configuration: ServeConfiguration, logger: Logger, clock: ServeClock, onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
        let metrics = ServeMetrics()
        self.metrics = metrics
        let store = try await makeStateStore(try configuration.stateLocation, clock: clock, logger: logger)
        self.store = store
        // Opening the datasets and scanning the spool block.
        catalog = try await runBlocking { try DatasetCatalog(configuration: configuration, store: store, metrics: metrics) }
        await catalog.warm()
        book = CursorBook(store: store, metrics: metrics)
        streams = StreamRegistry(limit: configuration.maxStreams, metrics: metrics)
        metrics.register(datasets: configuration.datasets.map(\.name))
        inference = try await makeOutputStore(state: store, catalog: catalog, clock: clock, metrics: metrics)
        // Last: nothing may throw once its HTTP client runs (run() shuts it down).
        let urls = configuration.spool.filter(ShardOriginConfiguration.isOrigin)
        origins = urls.isEmpty ? nil : try await ShardOrigins.open(urls, configuration: configuration.origin, metricsFactory: metrics.factory)
        if let origins { await catalog.add(origins: origins) }
    }

    /// Serves until the enclosing service group shuts down gracefully, then drains and
    /// returns, within the configuration's shutdown timeout whatever the clients do;
    /// cancelling the task stops at once.
    public func run() async throws {
        let port = configuration.port
        let (bodyTimeout, stallTimeout, logger, onListening) = (
            configuration.bodyTimeoutSeconds, configuration.stallTimeoutSeconds, logger, onListening
        )
        let connections = OpenConnections()
        let app = Application(
            router: makeRouter(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [
                        ConnectionGuard(
                            bodyTimeout: .seconds(Int64(bodyTimeout)), stallTimeout: .seconds(Int64(stallTimeout)), connections: connections,
                            logger: logger)
                    ],
                    idleTimeout: .seconds(Int64(configuration.headerTimeoutSeconds)))),
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "mbdata"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        // The enclosing group's graceful shutdown reaches this one; the drain hears it first
        // (a group shuts its services down last to first).
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app), .init(service: DrainService(drain: drain))]
        // A store with a connection pool to run (PostgreSQL's) runs first, so it shuts down
        // last: after the drain's last write.
        if let pool = store as? any Service { services.insert(.init(service: pool), at: 0) }
        services.insert(.init(service: ConnectionCloser(connections: connections, logger: logger)), at: 0)
        var groupConfiguration = ServiceGroupConfiguration(services: services, logger: logger)
        // Past the bound the group cancels its services, and the closer cuts every connection
        // still open. Cancelled services end in moments then; one that did not would be a bug,
        // and the process stops (a trap) rather than hang.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        groupConfiguration.maximumCancellationDuration = Self.cancellationBound
        let group = ServiceGroup(configuration: groupConfiguration)
        let names = catalog.names
        let spoolSets = await catalog.spoolSets
        logger.info("serving", metadata: ["datasets": "\(names)", "spool_sets": "\(spoolSets)", "state": "\(store.location)"])
        if let origins {
            logger.info("shard cache", metadata: ["cache": "\(origins.cache.directory)", "bytes": "\(origins.cache.usedBytes)", "capacity": "\(origins.cache.capacity)"])
        }
        do {
            try await group.run()
        } catch {
            await origins?.shutDown()
            throw error
        }
        await origins?.shutDown()
        logger.info("drained; cursors are on disk")
    }

    /// How long the daemon's services may take to end once cancelled (a shutdown past its bound).
    static let cancellationBound = Duration.seconds(10)

    func makeRouter() -> Router<ServeRequestContext> {
        let router = Router(context: ServeRequestContext.self)
        router.add(middleware: ServeMiddleware(token: configuration.token.map { Array($0.utf8) }, metrics: metrics, store: store, drain: drain))
        router.get("/healthz") { _, _ in
            guard !self.drain.isDraining else { throw ServeError.draining }
            return try Self.json(HealthStatus())
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.exposition())))
        }
        router.get("/v1/datasets") { _, _ in Self.json(try await self.catalog.describeJSON(nil)) }
        router.get("/v1/datasets/:name") { _, context in Self.json(try await self.catalog.describeJSON(Self.parameter("name", context))) }
        router.get("/v1/datasets/:name/batches") { request, context in try await self.stream(request, context) }
        router.get("/v1/datasets/:name/cursor") { request, context in
            let mode = request.uri.queryParameters["mode"]
            guard mode != "infer" else { return try await self.inferenceCursor(request, context) }
            return try await self.cursor(request, context)
        }
        router.post("/v1/datasets/:name/lease") { request, context in
            guard request.uri.queryParameters["mode"] != "infer" else { return try await self.inferenceLease(request, context) }
            return try await self.lease(request, context)
        }
        router.get("/v1/mixture/batches") { request, context in try await self.stream(request, context) }
        router.get("/v1/mixture/cursor") { request, context in try await self.cursor(request, context) }
        router.post("/v1/mixture/lease") { request, context in try await self.lease(request, context) }
        router.get("/v1/cursors/:id") { _, context in
            let id = String(Self.parameter("id", context))
            if let job = try await self.inference.job(id) { return try Self.json(await self.inference.state(job)) }
            return try Self.json(await self.book.state(id))
        }
        router.put("/v1/cursors/:id") { request, context in
            try await self.refuseInference(context)
            return try await self.restore(request, context)
        }
        router.delete("/v1/cursors/:id") { _, context in
            try await self.refuseInference(context)
            try await self.book.reset(String(Self.parameter("id", context)))
            return Response(status: .noContent)
        }
        router.post("/v1/cursors/:id/acks") { request, context in
            try await self.refuseInference(context)
            return try await self.ack(request, context)
        }
        router.post("/v1/cursors/:id/outputs") { request, context in try await self.submitOutputs(request, context) }
        return router
    }

    // MARK: - Batches

    private struct Resolved {
        var source: ServedSource
        var request: PlanRequest
        var plan: ServedPlan
        var cursor: CursorState
    }

    /// What a batch, lease or cursor request names, checked; changes no state. A request on
    /// `/v1/datasets/{name}/…` reads that dataset; one on `/v1/mixture/…` the mixture its
    /// `mix` names.
    private func resolve(_ request: Request, _ context: ServeRequestContext, leasing: Bool) async throws -> Resolved {
        let query = request.uri.queryParameters
        let source: ServedSource
        let planRequest: PlanRequest
        if let name = context.parameters.get("name") {
            source = .dataset(try await catalog.served(Substring(name)))
            planRequest = try PlanRequest(query: query, leasing: leasing)
            if planRequest.mixture != nil {
                throw ServeError.invalidParameter(
                    MixtureQuery.mixName, "nothing on a dataset's routes (a mixture is read from /v1/mixture/…)", got: query[Substring(MixtureQuery.mixName)])
            }
        } else {
            planRequest = try PlanRequest(query: query, leasing: leasing)
            guard let mixture = planRequest.mixture else { throw ServeError.invalidParameter(MixtureQuery.mixName, MixtureQuery.expected, got: nil) }
            source = .mixture(try await catalog.served(mixture: mixture))
        }
        let plan = try await catalog.plan(
            source: source, group: planRequest.group, parameters: planRequest.parameters, packing: planRequest.packing)
        let resolved = Resolved(source: source, request: planRequest, plan: plan, cursor: Self.freshCursor(source, planRequest, plan))
        try await book.check(resolved.cursor)
        return resolved
    }

    private static func freshCursor(_ source: ServedSource, _ planRequest: PlanRequest, _ plan: ServedPlan) -> CursorState {
        CursorState(
            cursor: CursorState.id(
                dataset: source.name, group: planRequest.group, mode: planRequest.mode, parameters: planRequest.parameters,
                packing: planRequest.packing, rank: planRequest.rank, replica: planRequest.replica),
            dataset: source.name, group: planRequest.group, mode: planRequest.mode, rank: planRequest.rank, replica: planRequest.replica,
            plan: planRequest.parameters, planFingerprint: plan.fingerprint, datasetVersion: plan.datasetVersion,
            batchesPerEpoch: plan.batchesPerEpoch, epochs: [], packing: planRequest.packing, mixture: plan.mixture?.pinned)
    }

    /// The cursor of a batch stream's or lease's plan, created on first use; its
    /// `MBData-Batches-Per-Epoch` is the epoch's (a packed plan's epochs differ: a loader over
    /// serve asks each of its epochs).
    private func cursor(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        let resolved = try await commit(resolve(request, context, leasing: request.uri.queryParameters["mode"] == "share"))
        let batches = try await catalog.batches(source: resolved.source, plan: resolved.plan, epoch: resolved.request.epoch)
        var response = try Self.json(resolved.cursor)
        response.headers[.mbdataBatchesPerEpoch] = String(batches)
        return response
    }

    /// Writes what an admitted request creates — its group's pin, its cursor — and returns
    /// it as the daemon now believes it. Called only once nothing can refuse the request.
    private func commit(_ resolved: Resolved) async throws -> Resolved {
        var resolved = resolved
        let pinned = try await catalog.pin(source: resolved.source, group: resolved.request.group, plan: resolved.plan)
        if pinned.fingerprint != resolved.plan.fingerprint {
            resolved.plan = pinned
            resolved.cursor = Self.freshCursor(resolved.source, resolved.request, pinned)
        }
        resolved.cursor = try await book.cursor(resolved.cursor)
        return resolved
    }

    /// Local batch messages a stream writes at once (each a few hundred bytes).
    static let localMessagesPerWrite = 16

    /// The headers of a batch stream or lease answer (schemas/serve-protocol.md §4);
    /// `batches` is the epoch's (a packed plan's epochs differ).
    static func headers(cursor: String, plan: ServedPlan, batches: Int, spooled: Bool) -> HTTPFields {
        var headers: HTTPFields = [
            .contentType: "application/vnd.mbdata.stream",
            .mbdataCursor: cursor,
            .mbdataPlan: plan.fingerprint,
            .mbdataDatasetVersion: String(plan.datasetVersion),
            .mbdataBatchesPerEpoch: String(batches),
            .mbdataSource: spooled ? "spool" : "live",
        ]
        if let packing = plan.packing { headers[.mbdataPacking] = "\(packing.field):\(packing.rowLength)" }
        return headers
    }

    /// Partition and replicate: this rank's unacked batches of the epoch, in order.
    private func stream(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        guard !drain.isDraining else { throw ServeError.draining }
        var resolved = try await resolve(request, context, leasing: false)
        // Admitted (a stream slot, the cursor's only stream) before anything is written: a
        // refused request leaves no cursor and no pin behind.
        let ticket = try streams.open(cursor: resolved.cursor.cursor)
        let claim: StreamClaim
        do {
            claim = try await StreamClaim(
                store: store, cursor: resolved.cursor.cursor, holder: holder, seconds: configuration.streamClaimSeconds, logger: logger)
        } catch {
            ticket.close()
            throw error
        }
        let items: [PlanItem]
        let producer: any BatchProducer
        let spooled: Bool
        let batches: Int
        do {
            resolved = try await commit(resolved)
            let planRequest = resolved.request
            batches = try await catalog.batches(source: resolved.source, plan: resolved.plan, epoch: planRequest.epoch)
            items = resolved.cursor.unacked(epoch: planRequest.epoch, from: planRequest.start, count: min(batches, planRequest.end))
                .map { PlanItem(epoch: planRequest.epoch, batch: $0, rank: planRequest.rank) }
            (producer, spooled) = try await catalog.producer(
                source: resolved.source, plan: resolved.plan, epoch: planRequest.epoch, rank: planRequest.rank)
        } catch {
            ticket.close()
            await claim.release()
            throw error
        }
        let planRequest = resolved.request
        let id = resolved.cursor.cursor
        // Local delivery only for spooled frames whose shard files stay where they are.
        let local = planRequest.localDelivery ? (producer as? SpoolBatchProducer).flatMap { $0.deliversLocally ? $0 : nil } : nil
        let run = local != nil ? Self.localMessagesPerWrite : 1
        let prefetcher = OrderedPrefetch(
            count: (items.count + run - 1) / run, workers: configuration.prefetch.workers, depth: configuration.prefetch.depth
        ) { index in
            if let local {
                return try OutgoingBatch.local(items[index * run..<min(items.count, (index + 1) * run)].map(local.frameLocation))
            }
            return try OutgoingBatch.make(items[index], from: producer)
        }
        var headers = Self.headers(cursor: resolved.cursor.cursor, plan: resolved.plan, batches: batches, spooled: spooled)
        headers[.mbdataRemaining] = String(items.count)
        headers[.mbdataDelivery] = local != nil ? "local" : "stream"
        let logger = self.logger
        var streamLogger = logger
        streamLogger[metadataKey: "cursor"] = "\(id)"
        streamLogger[metadataKey: "dataset"] = "\(resolved.source.name)"
        streamLogger[metadataKey: "epoch"] = "\(planRequest.epoch)"
        streamLogger[metadataKey: "rank"] = "\(planRequest.rank)"
        let send = StreamSender(
            prefetcher: prefetcher, cursor: id, dataset: resolved.source.name, mode: planRequest.mode, book: book, metrics: metrics,
            drain: drain, claim: claim, connection: context.eventLoop, logger: streamLogger)
        let book = self.book
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                await withDiscardingTaskGroup { group in
                    group.addTask { await claim.keepRenewed() }
                    await send.run(&writer)
                    group.cancelAll()
                }
                ticket.close()
                await claim.release()
                await book.endStream(id)
            })
    }

    /// Share: lease the group's next free batch to this consumer.
    private func lease(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        guard !drain.isDraining else { throw ServeError.draining }
        let resolved = try await commit(resolve(request, context, leasing: true))
        let planRequest = resolved.request
        let book = self.book
        let batches = try await catalog.batches(source: resolved.source, plan: resolved.plan, epoch: planRequest.epoch)
        return try await leaseAnswer(
            try await book.lease(resolved.cursor, epoch: planRequest.epoch, count: batches, seconds: planRequest.leaseSeconds),
            source: resolved.source, plan: resolved.plan, batches: batches, cursor: resolved.cursor.cursor, mode: .share,
            epoch: planRequest.epoch, rank: planRequest.rank
        ) { await book.release(lease: $0) }
    }

    /// A lease's answer (share or infer): the leased batch's message, the end message
    /// `complete`, or `204` with `Retry-After`. A batch whose message cannot be made is
    /// given back through `release`. `batches` is the epoch's.
    func leaseAnswer(
        _ outcome: LeaseOutcome, source: ServedSource, plan: ServedPlan, batches: Int, cursor: String, mode: StreamMode,
        epoch: Int, rank: Int, release: @Sendable (UInt64) async -> Void
    ) async throws -> Response {
        switch outcome {
        case .complete:
            return Response(
                status: .ok, headers: Self.headers(cursor: cursor, plan: plan, batches: batches, spooled: false),
                body: .init(byteBuffer: WireMessage.end(reason: .complete, sent: 0, allocator: ByteBufferAllocator())))
        case .wait(let seconds):
            var headers = Self.headers(cursor: cursor, plan: plan, batches: batches, spooled: false)
            headers[.contentType] = nil
            headers[.retryAfter] = String(Int(seconds.rounded(.up)))
            return Response(status: .noContent, headers: headers)
        case .leased(let batch, let lease):
            let item = PlanItem(epoch: epoch, batch: batch, rank: rank)
            do {
                let (producer, spooled) = try await catalog.producer(source: source, plan: plan, epoch: epoch, rank: rank)
                let outgoing = try await runBlocking { try OutgoingBatch.make(item, from: producer, lease: lease) }
                metrics.served(dataset: source.name, mode: mode, batches: 1, frameBytes: outgoing.frameBytes, uncompressedBytes: outgoing.uncompressedBytes)
                return Response(
                    status: .ok, headers: Self.headers(cursor: cursor, plan: plan, batches: batches, spooled: spooled), body: .init(byteBuffer: outgoing.message))
            } catch {
                await release(lease)
                throw error
            }
        }
    }

    // MARK: - Cursors

    private func ack(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        let id = String(Self.parameter("id", context))
        switch try AckRequest(json: await Self.collectBody(request)) {
        case .leases(let leases): return try Self.json(await book.ack(id, leases: leases))
        case .batches(let epoch, let batches):
            return try Self.json(await book.ack(id, epoch: epoch, batches: batches, count: catalog.packedBatches(cursor: id, epoch: epoch)))
        }
    }

    private func restore(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        let id = String(Self.parameter("id", context))
        let state = try CursorState(restoring: await Self.collectBody(request), id: id)
        let source: ServedSource
        if let mixture = state.mixture {
            source = .mixture(try await catalog.served(mixture: MixtureQuery(pinned: mixture)))
        } else {
            source = .dataset(try await catalog.served(Substring(state.dataset)))
        }
        let plan = try await catalog.plan(source: source, group: state.group, parameters: state.plan, packing: state.packing, preferring: state)
        try Self.checkRestore(state, against: plan)
        // The pin the state names is written first; a group pinned meanwhile to another
        // version refuses the state.
        try Self.checkRestore(state, against: await catalog.pin(source: source, group: state.group, plan: plan))
        try await book.restore(state)
        return try Self.json(state)
    }

    private static func checkRestore(_ state: CursorState, against plan: ServedPlan) throws {
        guard plan.fingerprint == state.planFingerprint, plan.datasetVersion == state.datasetVersion,
            plan.batchesPerEpoch == state.batchesPerEpoch, plan.mixture?.pinned == state.mixture
        else {
            if let saved = state.mixture, let resolved = plan.mixture?.pinned, let difference = saved.difference(from: resolved) {
                throw ServeError(.conflict, "cursor_mismatch", "the saved cursor is for another mixture than this daemon resolves: it \(difference)")
            }
            throw ServeError(
                .conflict, "cursor_mismatch",
                "the saved cursor is for plan \(state.planFingerprint.prefix(80)) at dataset version \(state.datasetVersion) with \(state.batchesPerEpoch) batches per epoch; this daemon resolves it to \(plan.fingerprint) at version \(plan.datasetVersion) with \(plan.batchesPerEpoch)"
            )
        }
    }

    // MARK: - Helpers

    static func parameter(_ name: String, _ context: ServeRequestContext) -> Substring {
        context.parameters.get(name).map { Substring($0) } ?? ""
    }

    static func json(_ data: Data) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A `200` with `value`'s JSON.
    static func json(_ value: some Encodable) throws -> Response { json(try WireJSON.encode(value)) }

    /// The request's body, at most `ServeLimits.maxBodyBytes` (413 beyond).
    static func collectBody(_ request: Request) async throws -> Data {
        var request = request
        return Data(try await request.collectBody(upTo: ServeLimits.maxBodyBytes).readableBytesView)
    }
}
