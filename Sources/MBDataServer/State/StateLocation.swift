import Foundation
import MBData

/// Where a daemon's state lives: what `--state` names.
package enum StateLocation: Sendable, Equatable, CustomStringConvertible {
    /// A SQLite file of this daemon alone (``SQLiteStateStore``).
    case sqlite(path: String)
    /// A PostgreSQL database every daemon of a cluster shares (`postgresql://` or
    /// `postgres://`).
    case postgres(url: URL)

    /// The location `text` names: a `postgresql://` or `postgres://` URL, or else a file path.
    ///
    /// - Throws: `MBDataError` `.invalidArgument` for an empty text, another URL scheme, or
    ///   a PostgreSQL URL without a host.
    package init(parsing text: String) throws {
        guard !text.isEmpty else { throw MBDataError(.invalidArgument, "the state location is empty: name a file or a postgresql:// URL") }
        guard let schemeEnd = text.range(of: "://") else {
            self = .sqlite(path: text)
            return
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgresql" || scheme == "postgres" else {
            throw MBDataError(
                .invalidArgument, "the state location must be a file path or a postgresql:// URL, not a \(scheme.prefix(32)):// URL")
        }
        guard let url = URL(string: text), let host = url.host, !host.isEmpty else {
            throw MBDataError(.invalidArgument, "the PostgreSQL state URL must name a host: postgresql://USER@HOST[:PORT]/DATABASE")
        }
        self = .postgres(url: url)
    }

    /// The path, or the URL without its password: fit for logs and errors.
    package var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let url):
            guard url.password != nil, var parts = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return url.absoluteString }
            parts.password = nil
            return parts.string ?? "\(url.scheme ?? "postgresql")://\(url.host ?? "")"
        }
    }
}
