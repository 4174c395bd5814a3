import Foundation
import MBData
import NIOSSL
import PostgresNIO

/// A `postgresql://` connection URL, as libpq reads it:
/// `postgresql://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE` (`postgres://` too). The user
/// defaults to `postgres`, the port to 5432, the database to the user; `sslmode` is
/// `disable`, `prefer` (the default), `require` (both encrypt without checking the
/// certificate, as libpq does) or `verify-full`. Untrusted: a malformed URL is an
/// `.invalidArgument` error naming the URL without its password.
package struct PostgresURL: Sendable, Equatable {
    /// The server's host name or address.
    package var host: String
    /// The server's TCP port.
    package var port: Int
    /// The role to connect as.
    package var user: String
    /// The role's password, if the URL has one.
    package var password: String?
    /// The database to open.
    package var database: String
    /// How the connection is encrypted.
    package var sslMode: SSLMode

    /// libpq's `sslmode` values this store knows.
    package enum SSLMode: String, Sendable, Equatable {
        /// A plain connection.
        case disable
        /// TLS when the server offers it, without checking its certificate.
        case prefer
        /// TLS or no connection, without checking the certificate.
        case require
        /// TLS or no connection, with the certificate checked against the system's roots
        /// and the host name.
        case verifyFull = "verify-full"
    }

    /// Whether `text` names a PostgreSQL database rather than a file.
    package static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    /// Parses `text`; throws `.invalidArgument` when it is not a usable `postgresql://` URL.
    package init(_ text: String) throws {
        guard Self.isPostgresURL(text), let parts = URLComponents(string: text), let host = parts.host, !host.isEmpty else {
            throw MBDataError(.invalidArgument, "expected a URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE, got \(Self.redacted(text))")
        }
        self.host = host
        port = parts.port ?? 5432
        guard (1...65535).contains(port) else {
            throw MBDataError(.invalidArgument, "the port of \(Self.redacted(text)) is outside 1...65535")
        }
        user = parts.user.flatMap { $0.removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        password = parts.password?.removingPercentEncoding
        let path = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        database = path.isEmpty ? user : path.removingPercentEncoding ?? path
        let mode = parts.queryItems?.last { $0.name == "sslmode" }?.value ?? SSLMode.prefer.rawValue
        guard let sslMode = SSLMode(rawValue: mode) else {
            throw MBDataError(.invalidArgument, "sslmode \(mode) of \(Self.redacted(text)): expected disable, prefer, require or verify-full")
        }
        self.sslMode = sslMode
    }

    /// The URL without its password: what logs and errors show.
    package var location: String {
        var parts = URLComponents()
        parts.scheme = "postgresql"
        parts.user = user
        parts.host = host
        parts.port = port
        parts.path = "/" + database
        if sslMode != .prefer { parts.queryItems = [URLQueryItem(name: "sslmode", value: sslMode.rawValue)] }
        return parts.string ?? "postgresql://\(host):\(port)/\(database)"
    }

    /// The client configuration for this URL.
    var clientConfiguration: PostgresClient.Configuration {
        var unchecked = TLSConfiguration.makeClientConfiguration()
        unchecked.certificateVerification = .none
        let tls: PostgresClient.Configuration.TLS =
            switch sslMode {
            case .disable: .disable
            case .prefer: .prefer(unchecked)
            case .require: .require(unchecked)
            case .verifyFull: .require(.makeClientConfiguration())
            }
        return PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
    }

    /// `text` with the password of its user part replaced by `***`.
    private static func redacted(_ text: String) -> String {
        guard var parts = URLComponents(string: text), parts.password != nil else { return String(text.prefix(200)) }
        parts.password = "***"
        return String((parts.string ?? "").prefix(200))
    }
}
