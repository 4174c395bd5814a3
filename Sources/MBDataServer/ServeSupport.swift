import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// Set once shutdown begins: new streams and leases are refused, open streams end after
/// the message in flight.
final class DrainState: Sendable {
    private let draining = Atomic<Bool>(false)
    var isDraining: Bool { draining.load(ordering: .acquiring) }
    func begin() { draining.store(true, ordering: .releasing) }
}

/// The first service to hear a graceful shutdown (SIGTERM, SIGINT): it starts the drain
/// before the HTTP server stops accepting and waits for the streams to end.
struct DrainService: Service {
    let drain: DrainState

    func run() async throws {
        try? await gracefulShutdown()
        drain.begin()
    }
}

/// Ends a graceful shutdown that outlasted its bound (`--shutdown-timeout`): the daemon's
/// service group cancels its services then, and this one closes every connection still
/// open — a stream whose reader stopped, a request whose body never came — so that the
/// server's task ends within the bound whatever the clients do. Listed first in the group,
/// it hears a graceful shutdown last, after the server and the store ended, and then returns.
struct ConnectionCloser: Service {
    let connections: OpenConnections
    let logger: Logger

    func run() async {
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled: past the bound, or by the application around the daemon.
            let closed = connections.closeAll()
            logger.notice("the shutdown passed --shutdown-timeout (or was cancelled): closing the connections still open", metadata: ["connections": "\(closed)"])
        }
    }
}

/// The open batch streams: at most `limit` (`--max-streams`), at most one per cursor.
final class StreamRegistry: Sendable {
    private let open = Mutex<Set<String>>([])
    let limit: Int
    private let metrics: ServeMetrics

    init(limit: Int, metrics: ServeMetrics) {
        self.limit = limit
        self.metrics = metrics
    }

    /// Claims a stream for `cursor`; the claim ends when the ticket is released — also when
    /// a response is dropped without its body ever being written (the client left first).
    func open(cursor: String) throws -> StreamTicket {
        let count = try open.withLock { cursors in
            guard cursors.count < limit else {
                throw ServeError(.tooManyRequests, "too_many_streams", "\(limit) streams are open, the limit (--max-streams)")
            }
            guard cursors.insert(cursor).inserted else {
                throw ServeError(.conflict, "cursor_busy", "cursor \(cursor) already has an open stream (one stream per rank and replica)")
            }
            return cursors.count
        }
        metrics.activeStreams(count)
        return StreamTicket(registry: self, cursor: cursor)
    }

    fileprivate func close(cursor: String) {
        metrics.activeStreams(open.withLock { cursors in
            cursors.remove(cursor)
            return cursors.count
        })
    }
}

/// One open stream's claim on its cursor, released by `close()` when the stream ends — or,
/// failing that, when the ticket is dropped (a response dropped before its body was written).
final class StreamTicket: Sendable {
    private let registry: StreamRegistry
    private let closed = Atomic<Bool>(false)
    let cursor: String

    fileprivate init(registry: StreamRegistry, cursor: String) {
        self.registry = registry
        self.cursor = cursor
    }

    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        registry.close(cursor: cursor)
    }

    deinit { close() }
}

extension HTTPField.Name {
    static let mbdataCursor = Self("MBData-Cursor")!
    static let mbdataPlan = Self("MBData-Plan")!
    static let mbdataDatasetVersion = Self("MBData-Dataset-Version")!
    static let mbdataBatchesPerEpoch = Self("MBData-Batches-Per-Epoch")!
    static let mbdataRemaining = Self("MBData-Remaining")!
    static let mbdataSource = Self("MBData-Source")!
    static let mbdataPacking = Self("MBData-Packing")!
    static let mbdataDelivery = Self("MBData-Delivery")!
    static let mbdataLease = Self("MBData-Lease")!
}

/// Checks the bearer token, turns every error into its JSON response and times requests;
/// while the daemon drains, every answer says `Connection: close`, so that no client sends
/// another request on a connection the daemon is about to close.
struct ServeMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?
    let metrics: ServeMetrics
    let store: any StateStore
    let drain: DrainState

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var response: Response
        do {
            if let token, !BearerToken.matches(request.headers[.authorization], token: token) {
                var error = ServeError(.unauthorized, "unauthorized", "this daemon requires Authorization: Bearer <token>")
                error.headers[.wwwAuthenticate] = "Bearer"
                throw error
            }
            response = try await next(request, context)
        } catch let error as HTTPParserError {
            // A malformed request (bad chunked encoding…): the server answers 400 and closes
            // the connection, whose bytes can no longer be trusted to frame a request.
            metrics.request(route: context.endpointPath ?? "unmatched", status: 400, took: started.duration(to: .now))
            throw error
        } catch {
            response = try ServeError.from(error, store: store).response(from: request, context: context)
        }
        if drain.isDraining { response.headers[.connection] = "close" }
        metrics.request(route: context.endpointPath ?? "unmatched", status: Int(response.status.code), took: started.duration(to: .now))
        return response
    }
}

/// The `--token-file` check.
enum BearerToken {
    /// Compares in constant time: the time taken does not depend on where the tokens differ.
    static func matches(_ header: String?, token: [UInt8]) -> Bool {
        let prefix = Array("Bearer ".utf8)
        let given = Array((header ?? "").utf8)
        guard given.count == prefix.count + token.count else { return false }
        var difference: UInt8 = 0
        for (index, byte) in given.enumerated() {
            difference |= byte ^ (index < prefix.count ? prefix[index] : token[index - prefix.count])
        }
        return difference == 0
    }
}
