import Foundation
import Logging
import MBData

/// Opens the state store `location` names, its leases and stream claims expiring on `clock`
/// where the store keeps them in memory; blocking work runs off the cooperative pool.
///
/// - Throws: `MBDataError` `.storage` when the store cannot be opened, `.invalidArgument`
///   for a kind of store this build lacks.
package func makeStateStore(_ location: StateLocation, clock: ServeClock, logger: Logger) async throws -> any StateStore {
    switch location {
    case .sqlite(let path):
        return try await runBlocking { try SQLiteStateStore(path: path, clock: clock) }
    case .postgres(let url):
        // Connects only once the daemon runs it: BatchServer runs a store that is a Service.
        return try PostgresStateStore(url: url.absoluteString, logger: logger)
    }
}
