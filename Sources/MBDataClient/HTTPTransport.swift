import AsyncHTTPClient
import Foundation
import MBDataTraining
import MBDataWire
import NIOCore
import NIOHTTP1
import Synchronization

/// HTTP to one daemon over AsyncHTTPClient: a pool of keep-alive connections (an ack reuses
/// one instead of opening its own), connect and read timeouts, TLS when the URL is https.
/// Shut down by ``shutdown()``, or when released.
final class HTTPTransport: Sendable {
    /// The daemon's URL without path or query: `http://127.0.0.1:7070`.
    let base: String
    let token: String?
    private let client: HTTPClient
    private let isShutDown = Mutex(false)

    init(url: String, token: String?, timeouts: ServeSource.Timeouts = .init()) throws {
        guard var components = URLComponents(string: url), ["http", "https"].contains(components.scheme), components.host?.isEmpty == false
        else {
            throw MBDataError(.invalidArgument, "expected a URL like http://127.0.0.1:7070, got \(url)")
        }
        components.path = ""
        components.query = nil
        components.fragment = nil
        guard let base = components.string else {
            throw MBDataError(.invalidArgument, "expected a URL like http://127.0.0.1:7070, got \(url)")
        }
        self.base = base
        self.token = token
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: TimeAmount(timeouts.connect), read: TimeAmount(timeouts.read)),
            connectionPool: .init(idleTimeout: .seconds(60)))
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
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

    /// Sends a request; the response's body is the caller's to read. Throws AsyncHTTPClient's
    /// and NIO's errors as they are (a stream reconnects on them); see ``unavailable(_:target:)``.
    func send(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: base + target)
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

    /// A request whose whole response body is read, whatever its status. A connection that
    /// cannot be made, times out or ends early throws `.unavailable` with the network error
    /// as its cause.
    func exchange(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil) async throws -> (status: Int, body: [UInt8]) {
        do {
            let response = try await send(method, target, json: body)
            let bytes = try await response.body.collect(upTo: Self.maxReplyBytes)
            return (Int(response.status.code), Array(bytes.readableBytesView))
        } catch {
            throw unavailable(error, target: target)
        }
    }

    /// A request whose whole response body is read; a status outside 2xx throws the
    /// daemon's error code and message.
    func call(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil) async throws -> (status: Int, body: [UInt8]) {
        let (status, bytes) = try await exchange(method, target, json: body)
        guard (200..<300).contains(status) else { throw Self.error(status: status, body: bytes, target: target) }
        return (status, bytes)
    }

    /// A `call` whose 2xx reply is a protocol document.
    func call<Reply: Decodable>(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil, as reply: Reply.Type) async throws -> Reply {
        let bytes = try await call(method, target, json: body).body
        do {
            return try WireJSON.decode(reply, from: Data(bytes))
        } catch {
            throw MBDataError(.corruptData, "the daemon's reply is not the expected JSON", source: target, cause: error)
        }
    }

    /// A failed request as the caller sees it: cancellation stays cancellation, an
    /// `MBDataError` stays itself, anything else — the network — is `.unavailable`.
    func unavailable(_ error: any Error, target: String) -> any Error {
        if error is MBDataError { return error }
        if error is CancellationError || Task.isCancelled { return CancellationError() }
        return MBDataError(.unavailable, "no answer from the daemon at \(base)", source: target, cause: error)
    }

    /// A status outside 2xx as an error: 400, 404 and 409 are the request's fault
    /// (`.invalidArgument`), any other (5xx above all) `.unavailable`. The message holds the
    /// status and the daemon's error code.
    static func error(status: Int, body: [UInt8], target: String) -> MBDataError {
        let detail = (try? WireJSON.decode(ErrorEnvelope.self, from: Data(body)))?.error
        return MBDataError(
            status == 400 || status == 404 || status == 409 ? .invalidArgument : .unavailable,
            "\(status) \(detail?.code ?? "error"): \(detail?.message ?? String(decoding: body.prefix(200), as: UTF8.self))", source: target)
    }
}
