import Foundation
import MBDataTraining
import NIOCore
import NIOHTTP1
import NIOPosix

/// Plain HTTP/1.1 over one NIO connection per request: enough for a daemon on the same
/// host or network (no TLS, no redirects).
struct HTTPTransport: Sendable {
    let host: String
    let port: Int
    let token: String?

    init(url: String, token: String?) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host else {
            throw MBDataError(.invalidArgument, "expected a URL like http://127.0.0.1:7070, got \(url)")
        }
        self.host = host
        port = components.port ?? 80
        self.token = token
    }

    struct Head: Sendable {
        var status: Int
        var headers: HTTPHeaders
    }

    /// Sends a request and hands the response head, then each body chunk, to the callbacks.
    func send(
        _ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil, head onHead: @Sendable (Head) async throws -> Void,
        body onBody: @Sendable (ByteBuffer) async throws -> Void
    ) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var request = HTTPRequestHead(version: .http1_1, method: method, uri: target)
            request.headers.add(name: "Host", value: "\(host):\(port)")
            request.headers.add(name: "Connection", value: "close")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "Content-Length", value: String(body.count))
            }
            try await outbound.write(.head(request))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            for try await part in inbound {
                switch part {
                case .head(let head): try await onHead(Head(status: Int(head.status.code), headers: head.headers))
                case .body(let chunk): try await onBody(chunk)
                case .end: return
                }
            }
            throw ConnectionCut()
        }
    }

    /// A request whose whole response body is read; a status outside 2xx throws the
    /// daemon's error code and message.
    func call(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil) async throws -> (status: Int, body: [UInt8]) {
        let (status, bytes) = try await exchange(method, target, json: body)
        guard (200..<300).contains(status) else { throw Self.error(status: status, body: bytes, target: target) }
        return (status, bytes)
    }

    /// A request whose whole response body is read, whatever its status. A connection that
    /// cannot be made or ends early throws `.unavailable` with the network error as its cause.
    func exchange(_ method: HTTPMethod, _ target: String, json body: [UInt8]? = nil) async throws -> (status: Int, body: [UInt8]) {
        let response = Collected()
        do {
            try await send(method, target, json: body, head: { response.set(status: $0.status) }, body: { response.append($0) })
        } catch let error as MBDataError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw MBDataError(.unavailable, "no answer from the daemon at \(host):\(port)", source: target, cause: error)
        }
        return response.value
    }

    /// A status outside 2xx as an error: 400, 404 and 409 are the request's fault
    /// (`.invalidArgument`), any other (5xx above all) `.unavailable`.
    static func error(status: Int, body: [UInt8], target: String) -> MBDataError {
        struct Envelope: Decodable {
            struct Detail: Decodable {
                var code: String
                var message: String
            }
            var error: Detail
        }
        let detail = try? JSONDecoder().decode(Envelope.self, from: Data(body)).error
        return MBDataError(
            status == 400 || status == 404 || status == 409 ? .invalidArgument : .unavailable,
            "\(status) \(detail?.code ?? "error"): \(detail?.message ?? String(decoding: body.prefix(200), as: UTF8.self))", source: target)
    }
}

/// The connection closed before the response ended.
struct ConnectionCut: Error {}

/// A response body gathered from the transport's callbacks.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var status = 0
    private var bytes: [UInt8] = []

    func set(status: Int) { lock.withLock { self.status = status } }
    func append(_ chunk: ByteBuffer) { lock.withLock { bytes.append(contentsOf: chunk.readableBytesView) } }
    var value: (Int, [UInt8]) { lock.withLock { (status, bytes) } }
}
