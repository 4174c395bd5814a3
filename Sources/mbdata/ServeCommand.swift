import ArgumentParser
import Foundation
import Logging
import MBData
import MBDataOrigin
import MBDataServer
import ServiceLifecycle
import UnixSignals

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve batches of datasets over HTTP to trainers in other processes.",
        discussion: """
            Each dataset is served under its file name without the extension, or NAME=PATH. \
            Consumers stream their rank's batches (partition, replicate) or lease them one at a time \
            (share); cursors advance on ack and are kept in the state database, so a restarted \
            daemon resumes every consumer. Inference consumers lease batches (infer) and submit their \
            outputs, written to the dataset file with the batch's completion in one transaction. A plan may \
            also draw from a weighted mixture of the served datasets (/v1/mixture/…?mix=web:0.6,code:repeat:2). \
            SIGTERM or SIGINT drains: open streams end after the \
            message in flight, then the daemon exits 0; a drain that outlasts --shutdown-timeout closes the \
            connections still open and exits 0 too. The protocol: schemas/serve-protocol.md.
            """)

    @Argument(help: "Dataset files (PATH or NAME=PATH).")
    var datasets: [String]

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free one.")
    var port: Int = 7070

    @Option(name: .customLong("token-file"), help: "Require 'Authorization: Bearer TOKEN' on every route; TOKEN is the file's first line.")
    var tokenFile: String?

    @Option(
        help: """
            A directory of shard sets (it and its subdirectories), or the http(s):// URL of one set's directory on an origin; \
            repeatable. Matching plans are served from their frames; an origin's files are fetched on demand into --cache \
            and verified against its manifest before a byte is served.
            """)
    var spool: [String] = []

    @Option(help: "The cache of shard files fetched from origins (default: $XDG_CACHE_HOME/mbdata/shards or ~/.cache/mbdata/shards).")
    var cache: String?

    @Option(
        name: .customLong("cache-size"),
        help: "Bytes of shard files the cache holds at most, e.g. 10G or 500M (powers of 1024); least recently read files are evicted.")
    var cacheSize: String = "10G"

    @Option(
        help: """
            Where cursors, pins and leases live: a SQLite file of this daemon (default: mbdata-serve.sqlite beside the first \
            dataset), or a postgresql:// URL of the database every daemon of a cluster shares.
            """)
    var state: String?

    @Option(name: .customLong("max-streams"), help: "Open batch streams at most; more get 429.")
    var maxStreams: Int = 64

    @Option(name: .customLong("header-timeout"), help: "Seconds a connection may stay silent while sending its request head.")
    var headerTimeout: Int = 30

    @Option(name: .customLong("body-timeout"), help: "Seconds a request's body may take to arrive after its head; slower clients are cut.")
    var bodyTimeout: Int = 30

    @Option(
        name: .customLong("stall-timeout"),
        help: "Seconds a consumer may leave its stream unread before the connection is closed and its stream slot freed.")
    var stallTimeout: Int = 60

    @Option(
        name: .customLong("shutdown-timeout"),
        help: """
            Seconds SIGTERM or SIGINT may take to drain before the connections still open are closed and the daemon exits \
            (default: --stall-timeout plus 15).
            """)
    var shutdownTimeout: Int?

    @Option(
        name: .customLong("max-output-bytes"),
        help: "Bytes an inference consumer's outputs submission may hold (and its LZ4 frame's content); more get 413.")
    var maxOutputBytes: Int = 256 << 20

    @Option(help: "Batches prepared ahead of each stream.")
    var depth: Int = 8

    @Option(
        help: """
            Threads of the daemon for blocking work — preparing batches, reading the datasets and the state database — \
            shared by all streams; one stream may use them all (default: the number of cores).
            """)
    var workers: Int?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard !datasets.isEmpty else { throw ValidationError("name at least one dataset file") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard (1...1_000_000).contains(maxStreams), (1...4096).contains(depth), (1...4096).contains(workers ?? 1) else {
            throw ValidationError("--max-streams must be in 1...1000000, --depth and --workers in 1...4096")
        }
        for (name, seconds) in [
            ("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout), ("--stall-timeout", stallTimeout),
            ("--shutdown-timeout", shutdownTimeout ?? 1),
        ] {
            guard (1...86_400).contains(seconds) else { throw ValidationError("\(name) must be in 1...86400 seconds") }
        }
        guard (1...(1 << 40)).contains(maxOutputBytes) else { throw ValidationError("--max-output-bytes must be in 1...\(1 << 40)") }
        do {
            _ = try ShardOriginConfiguration.parseByteCount(cacheSize)
        } catch let error as MBDataError {
            throw ValidationError("--cache-size: \(error.message)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
    }

    func run() async throws {
        AllocatorTuning.applyForBatchWorkloads()
        // Before anything runs blocking work: the size is fixed at the executor's first use.
        BlockingExecutor.configure(threads: workers ?? ProcessInfo.processInfo.activeProcessorCount)
        try await reportingErrors {
            let parsed = try datasets.map(ServeConfiguration.parseDataset)
            let state = state ?? ((parsed[0].path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("mbdata-serve.sqlite")
            var configuration = ServeConfiguration(datasets: parsed, state: state)
            configuration.host = host
            configuration.port = port
            configuration.token = try tokenFile.map(Self.readToken)
            configuration.spool = spool
            if let cache { configuration.origin.cacheDirectory = cache }
            configuration.origin.cacheBytes = try ShardOriginConfiguration.parseByteCount(cacheSize)
            configuration.maxStreams = maxStreams
            configuration.headerTimeoutSeconds = headerTimeout
            configuration.bodyTimeoutSeconds = bodyTimeout
            configuration.stallTimeoutSeconds = stallTimeout
            configuration.shutdownTimeoutSeconds = shutdownTimeout
            configuration.maxOutputBytes = maxOutputBytes
            configuration.prefetch.depth = depth
            if let workers { configuration.prefetch.workers = workers }
            var logger = Logger(label: "mbdata.serve") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = Logger.Level(rawValue: logLevel)!
            let host = self.host
            let server = try await BatchServer(configuration: configuration, logger: logger) { port in
                // Unbuffered, so a parent process reading the pipe sees it at once.
                FileHandle.standardOutput.write(Data("mbdata serve: listening on http://\(host):\(port)\n".utf8))
            }
            let group = ServiceGroup(
                configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    private static func readToken(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MBDataError(.unreadableSource, "cannot read the token file", source: path)
        }
        let token = text.split(whereSeparator: \.isNewline).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !token.isEmpty else { throw MBDataError(.invalidArgument, "the token file's first line is empty", source: path) }
        return token
    }
}
