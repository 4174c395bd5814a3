import Foundation
import MBData

/// How shard sets are fetched from HTTP origins and kept in the local cache. Every field
/// documents its default.
public struct ShardOriginConfiguration: Sendable {
    /// The cache directory: a subdirectory per origin set, holding its `manifest.json`, the
    /// shard files fetched and verified, and `index.json` of what was verified. One daemon
    /// uses a cache directory at a time. Default ``defaultCacheDirectory(environment:)``.
    public var cacheDirectory: String
    /// The bytes of shard files the cache holds at most; least recently read whole files are
    /// evicted to fetch another. Default 10 GiB.
    public var cacheBytes: Int = 10 << 30
    /// Seconds to establish a connection to an origin. Default 10.
    public var connectTimeoutSeconds: Int = 10
    /// Seconds an origin may send nothing while a request or a body is in flight. Default 30.
    public var readTimeoutSeconds: Int = 30
    /// Attempts of one request when the connection fails or the origin answers 5xx or 429;
    /// refusals (4xx, a body that does not verify) are not retried. Default 4.
    public var attempts: Int = 4
    /// The wait before the second attempt, doubled before each later one. Default 0.25 s.
    public var firstBackoff: Duration = .milliseconds(250)

    /// A configuration with every other field at its default.
    ///
    /// - Parameter cacheDirectory: The cache directory; created when missing.
    public init(cacheDirectory: String) {
        self.cacheDirectory = cacheDirectory
    }

    /// `$XDG_CACHE_HOME/mbdata/shards`, or `$HOME/.cache/mbdata/shards` when `XDG_CACHE_HOME`
    /// is unset: a per-user, per-node directory that is not the state's (which may be remote).
    public static func defaultCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            return (xdg as NSString).appendingPathComponent("mbdata/shards")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".cache/mbdata/shards")
    }

    /// Whether a `--spool` value names an HTTP origin (`http://` or `https://`) rather than a directory.
    public static func isOrigin(_ location: String) -> Bool {
        let lowered = location.lowercased()
        return lowered.hasPrefix("http://") || lowered.hasPrefix("https://")
    }

    /// A byte count written as digits with an optional binary suffix: `K`, `M`, `G` or `T`
    /// (powers of 1024, optionally followed by `iB` or `B`), e.g. `10G`, `500M`, `1048576`.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for anything else, or a count beyond `Int.max`.
    public static func parseByteCount(_ text: String) throws -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        var suffix = trimmed.dropFirst(digits.count).uppercased()
        if suffix.count == 3, suffix.hasSuffix("IB") {
            suffix.removeLast(2)
        } else if suffix.hasSuffix("B") {
            suffix.removeLast()
        }
        let shifts = ["": 0, "K": 10, "M": 20, "G": 30, "T": 40]
        guard !digits.isEmpty, let shift = shifts[suffix], let count = Int(digits), count <= Int.max >> shift else {
            throw MBDataError(.invalidArgument, "byte count \"\(text.prefix(32))\": expected digits and an optional K, M, G or T suffix (powers of 1024)")
        }
        return count << shift
    }
}
