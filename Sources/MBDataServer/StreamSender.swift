import Hummingbird
import Logging
import MBData
import MBDataWire
import NIOCore

/// Writes one stream's messages: each batch (or run of local batch messages) as the
/// workers ready it, then an end message — or an error message when production fails after
/// the headers went out.
///
/// A write only hands its message to the connection's event loop, which writes it to the
/// socket later; the socket's backpressure reaches the writer only once the loop has done
/// so. After each message the sender therefore waits for the loop to get past it: without
/// that wait, a loop kept off the CPU let the sender queue every message the workers made —
/// up to 93 of 790 KB each at once in a 1M-sample epoch (Benchmarks/README.md, serve) — so
/// the daemon's memory grew with the stream's length instead of staying at the prefetch depth.
struct StreamSender: Sendable {
    let prefetcher: OrderedPrefetch<OutgoingBatch>
    let cursor: String
    let dataset: String
    let mode: StreamMode
    let book: CursorBook
    let metrics: ServeMetrics
    let drain: DrainState
    let claim: StreamClaim
    /// The event loop of the stream's connection.
    let connection: any EventLoop
    let logger: Logger

    private struct ClientGone: Error {}

    func run(_ writer: inout any ResponseBodyWriter) async {
        let allocator = ByteBufferAllocator()
        let recorder = metrics.stream(dataset: dataset, mode: mode)
        let started = ContinuousClock.now
        var sent = 0
        var reason = StreamEnd.Reason.complete
        var iterator = prefetcher.results().makeAsyncIterator()
        do {
            while true {
                if drain.isDraining {
                    reason = .draining
                    break
                }
                guard !claim.isLost else {
                    throw ServeError(
                        .conflict, "cursor_busy", "the stream's claim on cursor \(cursor) lapsed; another daemon may stream it now")
                }
                let waitStarted = ContinuousClock.now
                guard let batch = try await iterator.next() else { break }
                metrics.waited(recorder, waitStarted.duration(to: .now), readyQueue: prefetcher.readyCount)
                await book.sent(cursor, batches: batch.batches)
                do {
                    try await writer.write(batch.message)
                    try await connection.submit {}.get()
                } catch {
                    throw ClientGone()
                }
                metrics.served(recorder, batches: batch.batches.count, frameBytes: batch.frameBytes, uncompressedBytes: batch.uncompressedBytes)
                sent += batch.batches.count
            }
            try await writer.write(WireMessage.end(reason: reason, sent: sent, allocator: allocator))
            try await writer.finish(nil)
            logger.info("stream ended", metadata: ["reason": "\(reason)", "sent": "\(sent)", "seconds": "\(started.duration(to: .now))"])
        } catch is ClientGone {
            logger.info("consumer disconnected", metadata: ["sent": "\(sent)"])
        } catch {
            let failure = ServeError.from(error, store: book.store)
            logger.error("stream failed", metadata: ["error": "\(failure)", "sent": "\(sent)"])
            try? await writer.write(WireMessage.error(failure, allocator: allocator))
            try? await writer.finish(nil)
        }
        await prefetcher.stop()
    }
}
