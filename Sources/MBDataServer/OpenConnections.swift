import NIOCore
import Synchronization

/// The daemon's open client connections, so that a shutdown past its bound can close every
/// one at once — also those whose close ``ConnectionGuard`` would otherwise hold for a
/// reader's last bytes, or whose request never ends.
final class OpenConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// The connections open now.
    var count: Int { channels.withLock { $0.count } }

    func add(_ channel: any Channel) {
        channels.withLock { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        channels.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Closes every open connection now, whatever it still has to write or read; returns how
    /// many there were.
    @discardableResult
    func closeAll() -> Int {
        let open = channels.withLock { Array($0.values) }
        for channel in open {
            channel.eventLoop.execute {
                channel.pipeline.syncOperations.fireUserInboundEventTriggered(ConnectionGuard.CloseNow())
            }
        }
        return open.count
    }
}
