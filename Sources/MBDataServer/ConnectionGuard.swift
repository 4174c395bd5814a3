import Logging
import NIOCore
import NIOHTTPTypes

/// Deadlines of one connection that the HTTP server itself lacks, and a close that never
/// drops a written message.
///
/// - **Body**: a request's body must arrive within `bodyTimeout` of its head (`--body-timeout`);
///   a client that trickles it (one byte every few seconds keeps an idle timer happy) is cut.
/// - **Stall**: a connection that cannot take more bytes for `stallTimeout` (`--stall-timeout`)
///   — its client stopped reading a stream — is closed, which ends the stream and frees its
///   slot of `--max-streams`.
/// - **Close after the last write**: a close asked for while written bytes still wait for the
///   socket (the server closes a connection after its response ends when it drains) waits
///   until they are out, at most `stallTimeout`. Without this, a drain cut streams of slower
///   readers inside a batch, before the `draining` end message they were promised.
/// - **Close now**: ``CloseNow`` fired into the pipeline closes at once, whatever is unwritten —
///   a shutdown past its bound (`--shutdown-timeout`) through ``OpenConnections/closeAll()``,
///   where the connection is listed while its guard is in the pipeline.
///
/// The deadlines run on the channel's event loop, so tests drive them with an embedded
/// loop's manual time.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let bodyTimeout: TimeAmount
    private let stallTimeout: TimeAmount
    private let logger: Logger
    private let connections: OpenConnections?
    private var bodyDeadline: Scheduled<Void>?
    private var stallDeadline: Scheduled<Void>?
    private var closeDeadline: Scheduled<Void>?
    /// Writes handed to the socket but not yet written.
    private var pendingWrites = 0
    /// The close waiting for `pendingWrites` to reach zero, and its promise.
    private var deferredClose: EventLoopPromise<Void>?
    private var closeDeferred = false

    /// The inbound event that closes the connection at once.
    struct CloseNow: Sendable {}

    init(
        bodyTimeout: TimeAmount, stallTimeout: TimeAmount, connections: OpenConnections? = nil,
        logger: Logger = Logger(label: "mbdata.serve") { _ in SwiftLogNoOpLogHandler() }
    ) {
        self.bodyTimeout = bodyTimeout
        self.stallTimeout = stallTimeout
        self.connections = connections
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connections?.add(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connections?.remove(context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is CloseNow else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        forceClose(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            bodyDeadline?.cancel()
            bodyDeadline = schedule(context, after: bodyTimeout) { handler, context in
                handler.bodyDeadline = nil
                handler.logger.notice("closing a connection: its request body did not arrive within --body-timeout", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
                handler.forceClose(context)
            }
        case .end:
            bodyDeadline?.cancel()
            bodyDeadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stallDeadline?.cancel()
            stallDeadline = nil
        } else if stallDeadline == nil {
            stallDeadline = schedule(context, after: stallTimeout) { handler, context in
                handler.stallDeadline = nil
                handler.logger.notice("closing a connection: its reader took no bytes for --stall-timeout", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
                handler.forceClose(context)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for deadline in [bodyDeadline, stallDeadline, closeDeadline] { deadline?.cancel() }
        (bodyDeadline, stallDeadline, closeDeadline) = (nil, nil, nil)
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let written = promise ?? context.eventLoop.makePromise()
        pendingWrites += 1
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in
            let (handler, context) = loopBound.value
            handler.pendingWrites -= 1
            if handler.pendingWrites == 0, handler.closeDeferred { handler.forceClose(context) }
        }
        context.write(data, promise: written)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, pendingWrites > 0 else {
            context.close(mode: mode, promise: promise)
            return
        }
        if let promise {
            if let deferredClose { deferredClose.futureResult.cascade(to: promise) } else { deferredClose = promise }
        }
        guard !closeDeferred else { return }
        closeDeferred = true
        context.flush()
        closeDeadline = schedule(context, after: stallTimeout) { handler, context in
            handler.closeDeadline = nil
            handler.forceClose(context)
        }
    }

    /// Closes now, whatever is still unwritten.
    private func forceClose(_ context: ChannelHandlerContext) {
        let promise = deferredClose
        deferredClose = nil
        closeDeferred = false
        for deadline in [bodyDeadline, stallDeadline, closeDeadline] { deadline?.cancel() }
        (bodyDeadline, stallDeadline, closeDeadline) = (nil, nil, nil)
        context.close(mode: .all, promise: promise)
    }

    private func schedule(
        _ context: ChannelHandlerContext, after delay: TimeAmount, _ action: @escaping (ConnectionGuard, ChannelHandlerContext) -> Void
    ) -> Scheduled<Void> {
        let loopBound = NIOLoopBound((self, context, action), eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: delay) {
            let (handler, context, action) = loopBound.value
            action(handler, context)
        }
    }
}
