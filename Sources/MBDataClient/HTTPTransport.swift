import AsyncHTTPClient
import Foundation
import MBDataTraining
import MBDataWire
import NIOCore
import NIOHTTP1
import Synchronization

/// HTTP to the daemons over AsyncHTTPClient: a pool of keep-alive connections (an ack reuses
/// one instead of opening its own), connect and read timeouts, TLS when the URL is https.
/// Requests go to the daemon in use, the first one given until it fails; ``exchange(_:_:json:)``
/// then moves to the next (``DaemonTries``). Shut down by ``shutdown()``, or when released.
final class HTTPTransport: Sendable {
    /// Every daemon's URL without path or query (`http://127.0.0.1:7070`), in order of preference.
    let bases: [String]
    let token: String?
    /// Rounds over the daemons a failed request or stream is tried again.
    let rounds: Int
    /// The longest a failed request or stream keeps trying daemons.
    let giveUpAfter: Duration
    private let inUse = Mutex(0)
    private let client: HTTPClient
    private let isShutDown = Mutex(false)

    init(urls: [String], token: String?, timeouts: ServeSource.Timeouts = .init(), rounds: Int = 20) throws {
        guard !urls.isEmpty else { throw MBDataError(.invalidArgument, "no daemon URL given") }
        bases = try urls.map(Self.base(of:))
        self.token = token
        self.rounds = rounds
        giveUpAfter = timeouts.giveUpAfter
        var pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60))
        // A refused connection fails its request at once, so that the next daemon is tried
        // (`DaemonTries` retries, with its backoff), rather than after the connect timeout.
        pool.retryConnectionEstablishment = false
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: TimeAmount(timeouts.connect), read: TimeAmount(timeouts.read)),
            connectionPool: pool)
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    convenience init(url: String, token: String?, timeouts: ServeSource.Timeouts = .init()) throws {
        try self.init(urls: [url], token: token, timeouts: timeouts)
    }

    /// `http[s]://host[:port]` of a daemon URL, its path and query dropped.
    private static func base(of url: String) throws -> String {
        let trimmed = url.trimmingCharacters(in: .whitespaces)
        guard var components = URLComponents(string: trimmed), ["http", "https"].contains(components.scheme),
            components.host?.isEmpty == false
        else {
            throw MBDataError(.invalidArgument, "expected a URL like http://127.0.0.1:7070, got \(url)")
        }
        components.path = ""
        components.query = nil
        components.fragment = nil
        guard let base = components.string else {
            throw MBDataError(.invalidArgument, "expected a URL like http://127.0.0.1:7070, got \(url)")
        }
        return base
    }

    /// The daemon requests go to now.
    var base: String { bases[inUse.withLock { $0 }] }

    /// Moves past `daemon` to the next, round robin, unless another task already moved on.
    func failOver(from daemon: String) {
        inUse.withLock { index in
            if bases[index] == daemon { index = (index + 1) % bases.count }
        }
    }

    /// The tries of one operation over the daemons.
    func tries(_ operation: String) -> DaemonTries {
        DaemonTries(transport: self, operation: operation)
    }

    /// Closes the pooled connections; later requests fail. Safe to call more than once.
    func shutdown() async throws {
        guard claimShutdown() else { return }
        try await client.shutdown()
    }

    deinit {
        // Not blocking: the client finishes closing on its own queue, and stays alive until then.
        if claimShutdown() { client.shutdown { _ in } }
    }

    private func claimShutdown() -> Bool {
        isShutDown.withLock { done in
            defer { done = true }
            return !done
        }
    }

    /// Sends a request to `daemon`; the response's body is the caller's to read. Throws
    /// AsyncHTTPClient's and NIO's errors as they are (a stream reconnects on them).
    func send(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil, to daemon: String) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: daemon + target)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return try await client.execute(request, deadline: .distantFuture)
    }

    /// The largest reply body read whole (a cursor state of a million acked batches fits).
    static let maxReplyBytes = 64 << 20

    /// A request whose whole response body is read, whatever its status but `503`. A
    /// connection that cannot be made, times out or ends early, and a `503` (draining, or
    /// the state could not be written: nothing changed), send the request to the next daemon
    /// (``DaemonTries``); when they all keep failing this throws `.unavailable`, naming every
    /// daemon tried, with the last failure as its cause. Every request of the protocol may be
    /// sent again: acks are idempotent, the others read or replace state.
    func exchange(
        _ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil
    ) async throws -> (status: Int, headers: HTTPHeaders, body: [UInt8]) {
        var tries = tries("\(method) \(target)")
        while true {
            let daemon = base
            let failure: any Error & Sendable
            do {
                let response = try await send(method, target, json: body, to: daemon)
                let bytes = Array(try await response.body.collect(upTo: Self.maxReplyBytes).readableBytesView)
                let status = Int(response.status.code)
                guard status == 503 else { return (status, response.headers, bytes) }
                failure = Self.error(status: status, body: bytes, target: target)
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                failure = error
            }
            try await tries.failed(daemon, failure)
        }
    }

    /// A request whose whole response body is read; a status outside 2xx throws the
    /// daemon's error code and message.
    func call(
        _ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil
    ) async throws -> (status: Int, headers: HTTPHeaders, body: [UInt8]) {
        let (status, headers, bytes) = try await exchange(method, target, json: body)
        guard (200..<300).contains(status) else { throw Self.error(status: status, body: bytes, target: target) }
        return (status, headers, bytes)
    }

    /// A `call` whose 2xx reply is a protocol document.
    func call<Reply: Decodable>(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil, as reply: Reply.Type) async throws -> Reply {
        try await callWithHeaders(method, target, json: body, as: reply).reply
    }

    /// A `call` whose 2xx reply is a protocol document, with the reply's headers.
    func callWithHeaders<Reply: Decodable>(
        _ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil, as reply: Reply.Type
    ) async throws -> (reply: Reply, headers: HTTPHeaders) {
        let (_, headers, bytes) = try await call(method, target, json: body)
        do {
            return (try WireJSON.decode(reply, from: Data(bytes)), headers)
        } catch {
            throw MBDataError(.corruptData, "the daemon's reply is not the expected JSON", source: target, cause: error)
        }
    }

    /// A status outside 2xx as an error: 400, 404 and 409 are the request's fault
    /// (`.invalidArgument`), any other (5xx above all) `.unavailable`. The message holds the
    /// status and the daemon's error code.
    static func error(status: Int, body: [UInt8], target: String) -> MBDataError {
        let detail = ErrorEnvelope.detail(in: body)
        return MBDataError(
            status == 400 || status == 404 || status == 409 ? .invalidArgument : .unavailable,
            "\(status) \(detail?.code ?? "error"): \(detail?.message ?? String(decoding: body.prefix(200), as: UTF8.self))", source: target)
    }
}
