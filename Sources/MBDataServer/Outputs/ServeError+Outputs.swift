import HTTPTypes
import MBData

/// The refusals of inference (schemas/serve-protocol.md §8), worded alike by every output store.
extension ServeError {
    /// `409 already_done`: the batch `lease` held is committed; nothing of this submission was written.
    static func alreadyDone(batch: Int, lease: UInt64) -> ServeError {
        ServeError(.conflict, "already_done", "batch \(batch) of lease \(lease) is committed already (its outputs are written); nothing was written")
    }

    /// `409 lease_expired`: `lease` is expired, unknown or another cursor's.
    static func leaseExpired(_ lease: UInt64, cursor: String) -> ServeError {
        ServeError(.conflict, "lease_expired", "lease \(lease) of cursor \(cursor) expired or is unknown; its batch goes to another consumer")
    }

    /// `404 unknown_output` when `dataset` has no output `output`.
    static func checkOutput(_ output: String, of served: DatasetCatalog.Served) async throws -> OutputInfo {
        do {
            return try await served.dataset.output(output)
        } catch let error as MBDataError where error.code == .invalidArgument {
            throw ServeError(.notFound, "unknown_output", "dataset \(served.name) has no output named \"\(output)\" (mbdata outputs create)")
        }
    }
}
