import AsyncHTTPClient
import MBData
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Streams one shard file's body into a cache file, hashing it as it goes, on the origin's
/// writer threads; the client reads the next part only once the previous one is written.
/// A status other than 200, a `Content-Length` other than the manifest's size, or more bytes
/// than it are refused before anything more is written.
final class ShardDownloadDelegate: HTTPClientResponseDelegate {
    typealias Response = UInt64

    private let source: String
    private let expectedBytes: Int
    private let file: ShardDownloadFile
    private let writers: NIOThreadPool
    private let metrics: OriginMetrics
    private let progress = Mutex<(received: Int, refusal: MBDataError?)>((0, nil))

    init(source: String, expectedBytes: Int, file: ShardDownloadFile, writers: NIOThreadPool, metrics: OriginMetrics) {
        self.source = source
        self.expectedBytes = expectedBytes
        self.file = file
        self.writers = writers
        self.metrics = metrics
    }

    /// Why the response was refused, if it was.
    var refusal: MBDataError? { progress.withLock { $0.refusal } }

    private func refuse(_ error: MBDataError, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        progress.withLock { $0.refusal = $0.refusal ?? error }
        return eventLoop.makeFailedFuture(error)
    }

    func didReceiveHead(task: HTTPClient.Task<Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        guard head.status == .ok else {
            return refuse(HTTPShardOrigin.refusal(status: head.status, expected: .ok, source: source), on: task.eventLoop)
        }
        if let declared = head.headers.first(name: "Content-Length"), Int(declared) != expectedBytes {
            return refuse(
                MBDataError(
                    .corruptData, "the origin declares Content-Length \(declared.prefix(24)), the manifest says the shard holds \(expectedBytes) bytes",
                    source: source), on: task.eventLoop)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Response>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let received = progress.withLock { progress in
            progress.received += buffer.readableBytes
            return progress.received
        }
        guard received <= expectedBytes else {
            return refuse(
                MBDataError(.corruptData, "the origin sent more than the \(expectedBytes) bytes the manifest lists", source: source),
                on: task.eventLoop)
        }
        metrics.fetched(buffer.readableBytes)
        let file = self.file
        return writers.runIfActive(eventLoop: task.eventLoop) {
            try buffer.withUnsafeReadableBytes { try file.write($0) }
        }
    }

    func didReceiveError(task: HTTPClient.Task<Response>, _ error: any Error) {}

    func didFinishRequest(task: HTTPClient.Task<Response>) throws -> Response {
        let received = progress.withLock { $0.received }
        guard received == expectedBytes else {
            throw MBDataError(
                .corruptData, "the origin sent \(received) bytes, the manifest says the shard holds \(expectedBytes) (truncated or replaced)",
                source: source)
        }
        return file.digest
    }
}
