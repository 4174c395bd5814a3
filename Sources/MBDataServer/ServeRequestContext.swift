import Hummingbird
import NIOCore

/// The request context of the daemon's routes: Hummingbird's basic context and the event
/// loop of the request's connection, which a batch stream waits on after each message so
/// that it never runs ahead of its socket (``StreamSender``).
struct ServeRequestContext: RequestContext {
    /// Hummingbird's per-request storage: parameters, logger, allocator.
    var coreContext: CoreRequestContextStorage
    /// The event loop that owns the request's connection.
    let eventLoop: any EventLoop

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        eventLoop = source.channel.eventLoop
    }
}
