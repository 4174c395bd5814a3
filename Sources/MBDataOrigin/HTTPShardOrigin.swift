import AsyncHTTPClient
import Foundation
import MBData
import NIOCore
import NIOHTTP1
import NIOPosix

/// One shard set's directory on an HTTP origin — any server or object store that serves
/// `<url>/manifest.json` and `<url>/<shard file>` — read through a shared `HTTPClient`.
///
/// Requests that fail to connect, time out, are cut, or get 5xx or 429 are retried
/// (``ShardOriginConfiguration/attempts``, with doubling backoff); a 4xx or a body that is
/// not what was asked for is refused at once. Errors name the URL and what was expected.
package final class HTTPShardOrigin: Sendable {
    /// The set's URL, ending in `/`, without its query.
    package let url: String
    private let query: String
    private let client: HTTPClient
    private let configuration: ShardOriginConfiguration
    private let metrics: OriginMetrics
    /// Writes downloaded bytes to the cache. Not the process's blocking executor: its threads
    /// wait for downloads, and a download waiting for one of them could deadlock.
    private let writers: NIOThreadPool

    package init(url: String, client: HTTPClient, writers: NIOThreadPool, configuration: ShardOriginConfiguration, metrics: OriginMetrics) throws {
        guard ShardOriginConfiguration.isOrigin(url), let parsed = URL(string: url), parsed.host != nil else {
            throw MBDataError(.invalidArgument, "a shard origin is an http:// or https:// URL of a shard set's directory", source: url)
        }
        // A query (a signature some CDNs and buckets accept for a whole prefix) stays after each file's name.
        let parts = url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        self.url = path.hasSuffix("/") ? path : path + "/"
        query = parts.count > 1 ? "?" + parts[1] : ""
        self.client = client
        self.writers = writers
        self.configuration = configuration
        self.metrics = metrics
    }

    /// The URL of `file` in the set's directory (names the manifest validated: no `/`, no `..`).
    package func location(_ file: String) -> String { url + file + query }

    // MARK: - Small bodies (the manifest, footers by range)

    /// The whole of `file`, refused when longer than `limit` bytes.
    package func fetch(_ file: String, limit: Int) async throws -> [UInt8] {
        try await retrying(file) { try await self.get(file, range: nil, limit: limit) }
    }

    /// Bytes `range` of `file` by an HTTP Range request; the origin must answer 206 with exactly those bytes.
    package func fetch(_ file: String, range: Range<Int>) async throws -> [UInt8] {
        try await retrying(file) { try await self.get(file, range: range, limit: range.count) }
    }

    private func get(_ file: String, range: Range<Int>?, limit: Int) async throws -> [UInt8] {
        let source = location(file)
        var request = HTTPClientRequest(url: source)
        if let range { request.headers.add(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound - 1)") }
        let timeout = TimeAmount.seconds(Int64(configuration.readTimeoutSeconds))
        let response = try await client.execute(request, timeout: timeout)
        let expected: HTTPResponseStatus = range == nil ? .ok : .partialContent
        guard response.status == expected else {
            throw Self.refusal(status: response.status, expected: expected, source: source)
        }
        let body = try await response.body.collect(upTo: limit)
        metrics.fetched(body.readableBytes)
        if let range, body.readableBytes != range.count {
            throw MBDataError(
                .corruptData, "asked for bytes \(range.lowerBound)…\(range.upperBound - 1) (\(range.count) bytes), the origin sent \(body.readableBytes)",
                source: source)
        }
        return Array(body.readableBytesView)
    }

    // MARK: - Shard files

    /// Downloads `shard` into `file` (a temporary file in the cache), blocking the calling
    /// thread — a worker's, never the cooperative pool's — and returns the xxh64 of the bytes
    /// written. Each attempt starts the file over. The origin must answer 200 with
    /// `shard.bytes` bytes (a `Content-Length` that says otherwise is refused at once).
    package func download(_ shard: ShardManifest.Shard, into file: ShardDownloadFile) throws -> UInt64 {
        let source = location(shard.file)
        return try retryingBlocking(shard.file) {
            try file.restart()
            let delegate = ShardDownloadDelegate(source: source, expectedBytes: shard.bytes, file: file, writers: writers, metrics: metrics)
            let request = try HTTPClient.Request(url: source)
            let result: Result<UInt64, any Error>
            do {
                result = .success(try client.execute(request: request, delegate: delegate).futureResult.wait())
            } catch {
                result = .failure(error)
            }
            // The delegate's own finding (a status, a length) explains a failure better than the client's error.
            if let refusal = delegate.refusal { throw refusal }
            return try result.get()
        }
    }

    // MARK: - Retries

    private func retrying<T: Sendable>(_ file: String, _ attempt: @Sendable () async throws -> T) async throws -> T {
        var failures = 0
        while true {
            do {
                return try await attempt()
            } catch {
                failures += 1
                try await Task.sleep(for: try pause(after: error, failures: failures, file: file))
            }
        }
    }

    private func retryingBlocking<T>(_ file: String, _ attempt: () throws -> T) throws -> T {
        var failures = 0
        while true {
            do {
                return try attempt()
            } catch {
                failures += 1
                let pause = try pause(after: error, failures: failures, file: file).components
                usleep(UInt32(clamping: pause.seconds * 1_000_000 + pause.attoseconds / 1_000_000_000_000))
            }
        }
    }

    /// The wait before the next attempt after `failures` failed ones, the last with `error`;
    /// throws the error when it is not worth retrying or no attempt is left.
    private func pause(after error: any Error, failures: Int, file: String) throws -> Duration {
        var failure = classify(error, file: file)
        guard failure.code == .unavailable else { throw failure }
        guard failures < configuration.attempts else {
            failure.message += " (gave up after \(failures) attempts)"
            throw failure
        }
        metrics.retried()
        return configuration.firstBackoff * (1 << min(failures - 1, 16))
    }

    /// A library error as it is; any other failure of the client (connect, timeout, a cut
    /// connection) as `unavailable`, which is retried.
    private func classify(_ error: any Error, file: String) -> MBDataError {
        if let error = error as? MBDataError { return error }
        return MBDataError(.unavailable, "cannot fetch from the origin: \(error)", source: location(file), cause: error)
    }

    /// 5xx and 429 are worth retrying; any other unexpected status refuses the file.
    static func refusal(status: HTTPResponseStatus, expected: HTTPResponseStatus, source: String) -> MBDataError {
        let transient = status.code >= 500 || status == .tooManyRequests
        let hint = expected == .partialContent && status == .ok ? " (the origin ignores Range requests)" : ""
        return MBDataError(
            transient ? .unavailable : .unreadableSource,
            "the origin answered \(status.code) \(status.reasonPhrase), expected \(expected.code)\(hint)", source: source)
    }
}
