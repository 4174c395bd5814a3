import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import MBDataServer

/// The connection deadlines, on an embedded event loop whose time the tests move: a slow
/// body is cut, a stalled reader is closed, and a close waits for written bytes.
@Suite struct ConnectionGuardTests {
    static func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: ConnectionGuard(bodyTimeout: .seconds(30), stallTimeout: .seconds(60)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    static let head = HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/cursors/c/acks"))

    @Test func aBodyThatTricklesPastTheBodyTimeoutIsCut() throws {
        let channel = try Self.channel()
        try channel.writeInbound(Self.head)
        for _ in 0..<14 {  // 28 s of one byte every 2 s: an idle timer would never fire
            channel.embeddedEventLoop.advanceTime(by: .seconds(2))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "{")))
            #expect(channel.isActive)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(!channel.isActive)
    }

    @Test func aBodyThatArrivesInTimeKeepsTheConnection() throws {
        let channel = try Self.channel()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func aReaderThatStopsReadingIsClosedAfterTheStallTimeout() throws {
        let channel = try Self.channel()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(!channel.isActive)
    }

    /// Stands for a socket that has not taken the bytes written to it: holds each write's
    /// promise until the test completes it.
    final class HeldWrites: ChannelOutboundHandler {
        typealias OutboundIn = HTTPResponsePart
        var promises: [EventLoopPromise<Void>] = []
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if let promise { promises.append(promise) }
        }
    }

    /// The drain's close after a stream's end message: it waits until the message is
    /// written, then closes; a reader that never takes it is closed after the stall timeout.
    @Test func aCloseWaitsForWrittenBytesAtMostTheStallTimeout() throws {
        for reads in [true, false] {
            let held = HeldWrites()
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandlers([held, ConnectionGuard(bodyTimeout: .seconds(30), stallTimeout: .seconds(60))])
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            channel.writeAndFlush(HTTPResponsePart.end(nil), promise: nil)
            channel.pipeline.close(promise: nil)
            channel.embeddedEventLoop.advanceTime(by: .seconds(59))
            #expect(channel.isActive)
            if reads {
                for promise in held.promises { promise.succeed() }
                #expect(!channel.isActive)
            } else {
                channel.embeddedEventLoop.advanceTime(by: .seconds(1))
                #expect(!channel.isActive)
                for promise in held.promises { promise.succeed() }
            }
        }
    }

    /// A shutdown past its bound: ``OpenConnections/closeAll()`` closes a connection at once
    /// even while its close waits for bytes its reader never takes, and a closed connection
    /// leaves the list.
    @Test func closeAllClosesAConnectionWhoseCloseWaitsForItsReader() throws {
        let held = HeldWrites()
        let connections = OpenConnections()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            held, ConnectionGuard(bodyTimeout: .seconds(30), stallTimeout: .seconds(60), connections: connections),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        #expect(connections.count == 1)
        channel.writeAndFlush(HTTPResponsePart.end(nil), promise: nil)
        channel.pipeline.close(promise: nil)
        channel.embeddedEventLoop.run()
        #expect(channel.isActive)
        #expect(connections.closeAll() == 1)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(connections.count == 0)
        for promise in held.promises { promise.succeed() }
    }
}
