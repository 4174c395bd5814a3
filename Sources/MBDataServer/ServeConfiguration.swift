import Foundation
import MBData
import MBDataOrigin

/// How `mbdata serve` runs. Every field documents its default.
public struct ServeConfiguration: Sendable {
    /// Datasets to serve: name → path of the `.mbdb` file.
    public var datasets: [(name: String, path: String)]
    /// Default 127.0.0.1: loopback only.
    public var host: String = "127.0.0.1"
    /// Default 7070; 0 picks a free port (reported through `onListening`).
    public var port: Int = 7070
    /// When set, every route requires `Authorization: Bearer <token>`.
    public var token: String?
    /// Where shard sets are: directories (each holding sets in it and its immediate
    /// subdirectories) and `http://` or `https://` URLs of one set's directory on an origin,
    /// fetched into ``origin``'s cache. A batch request whose plan matches a set is served
    /// from its frames; local directories are preferred, then the order given. Default none.
    public var spool: [String] = []
    /// The cache and timeouts of sets at URLs in ``spool``. Default: the cache in
    /// `ShardOriginConfiguration.defaultCacheDirectory(environment:)`, 10 GiB.
    public var origin = ShardOriginConfiguration(cacheDirectory: ShardOriginConfiguration.defaultCacheDirectory())
    /// Where cursors, pinned plan versions and leases live: the path of this daemon's SQLite
    /// file, or the `postgresql://` URL of the database every daemon of a cluster shares.
    public var state: String
    /// Seconds a stream's claim on its cursor outlives a daemon that stopped renewing it
    /// (a daemon renews it every third of this while the stream is open). Default 30.
    public var streamClaimSeconds: Double = 30
    /// Open batch streams at most; more get 429. Default 64.
    public var maxStreams: Int = 64
    /// Seconds a connection may stay silent while sending its request head. Default 30.
    public var headerTimeoutSeconds: Int = 30
    /// Seconds a request's body may take to arrive after its head; a slower one is cut. Default 30.
    public var bodyTimeoutSeconds: Int = 30
    /// Seconds a connection may refuse more bytes — a consumer that stopped reading its
    /// stream — before it is closed and its stream slot freed; also the longest a drain waits
    /// for a stream's last bytes to leave. Default 60.
    public var stallTimeoutSeconds: Int = 60
    /// Seconds a graceful shutdown (SIGTERM, SIGINT, the enclosing service group's) may take
    /// before every connection still open is closed and the daemon stops at once; nil, the
    /// default: ``stallTimeoutSeconds`` plus 15, so a drain is never cut before a stream's
    /// last bytes had their `--stall-timeout` to leave (the margin covers the state
    /// writes in flight, each bounded by the store's own deadline, and closing the pool).
    /// Requests answered before are in the state either way: every ack is written before
    /// it is answered.
    public var shutdownTimeoutSeconds: Int?
    /// Ready batches held ahead of each stream, and the threads preparing them. Frames made
    /// live leave out LZ4's content checksum by default (the message header's xxh64 covers
    /// them; serve-protocol.md §4).
    public var prefetch: PrefetchConfiguration = {
        var prefetch = PrefetchConfiguration()
        prefetch.frameContentChecksum = false
        return prefetch
    }()
    /// Bytes an outputs submission may hold, and the content its LZ4 frame may declare;
    /// more get 413. Default 256 MiB.
    public var maxOutputBytes: Int = 256 << 20

    /// A configuration with every other field at its default.
    ///
    /// - Parameters:
    ///   - datasets: The datasets to serve, each under a name of 1–64 letters, digits, `.`, `_` or
    ///     `-` that clients use in URLs.
    ///   - state: The state database: a SQLite file, created when missing, or a
    ///     `postgresql://` URL.
    public init(datasets: [(name: String, path: String)], state: String) {
        self.datasets = datasets
        self.state = state
    }

    /// How long a graceful shutdown may take: ``shutdownTimeoutSeconds`` or its default.
    package var shutdownTimeout: Duration { .seconds(shutdownTimeoutSeconds ?? stallTimeoutSeconds + 15) }

    /// The store ``state`` names; `.invalidArgument` when it names none.
    package var stateLocation: StateLocation {
        get throws { try StateLocation(parsing: state) }
    }

    /// Dataset and group names: letters, digits, `.`, `_`, `-`; never a path.
    static func isValidName(_ name: Substring) -> Bool {
        guard let first = name.first, name.count <= 64, first.isASCII, first.isLetter || first.isNumber else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    /// The dataset name for a command-line argument: `name=path`, or ``Dataset/name(ofPath:)``.
    package static func parseDataset(_ argument: String) throws -> (name: String, path: String) {
        let name: String
        let path: String
        if let equals = argument.firstIndex(of: "="), !argument[..<equals].contains("/") {
            name = String(argument[..<equals])
            path = String(argument[argument.index(after: equals)...])
        } else {
            path = argument
            name = Dataset.name(ofPath: path)
        }
        guard isValidName(Substring(name)) else {
            throw MBDataError(
                .invalidArgument, "dataset name \"\(name)\" must be 1–64 letters, digits, '.', '_' or '-' (use name=path)", source: path)
        }
        return (name, path)
    }
}
