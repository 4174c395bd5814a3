import Foundation
import Synchronization

/// The reading side of an ingest: a job on the process-wide `BlockingExecutor` (holding one
/// of its threads for the ingest) reads the source, assigns splits,
/// applies the error policy and cuts the records into blocks at transaction boundaries,
/// handing them to the writer through a bounded queue (four blocks at most).
final class ParsingPipeline {
    /// A run of parsed samples. `closesTransaction` marks the last block of a transaction.
    struct Block {
        var rows: [(split: String, values: [SampleValue])] = []
        var recordsConsumed = 0
        var badRecords: [MBDataError] = []
        var payloadBytes = 0
        var bytesRead = 0
        var closesTransaction = false
    }

    /// What the writer takes from the queue.
    enum Message {
        case block(Block)
        case finished(contentHash: String?, notes: [String], bytesRead: Int)
        case failed(any Error)
    }

    /// Set when the task awaiting the ingest is cancelled; the reader stops at the next record.
    final class Cancellation: Sendable {
        private let flag = Atomic<Bool>(false)
        func cancel() { flag.store(true, ordering: .relaxed) }
        var isCancelled: Bool { flag.load(ordering: .relaxed) }
    }

    private static let blockPayloadLimit = 4 << 20

    private let queue = BoundedQueue<Message>(capacity: 4)
    private let readerDone = DispatchSemaphore(value: 0)

    /// Starts reading `source`, dropping the first `skip` records (committed by an earlier run).
    /// The source moves to the reader job: the caller no longer touches it.
    init(source: any SampleSource, schema: Schema, options: IngestOptions, skip: Int, cancellation: Cancellation) {
        let handOff = UncheckedSendable(source)
        let (queue, readerDone) = (queue, readerDone)
        BlockingExecutor.submit {
            Self.read(handOff.value, schema: schema, options: options, skip: skip, cancellation: cancellation, into: queue)
            readerDone.signal()
        }
    }

    /// The next message, or nil once the reader stopped after `stop()`.
    func take() -> Message? { queue.take() }

    /// Stops the reader (if it still runs) and waits for its thread to end.
    func stop() {
        queue.close()
        readerDone.wait()
    }

    private static func read(
        _ source: any SampleSource, schema: Schema, options: IngestOptions, skip: Int, cancellation: Cancellation,
        into queue: BoundedQueue<Message>
    ) {
        let splitter = SplitAssigner(schema: schema, options: options)
        var block = Block()
        var recordsInTransaction = 0
        var badTotal = 0
        var skipped = 0
        do {
            while let item = try source.next() {
                if cancellation.isCancelled { throw CancellationError() }
                if skipped < skip {
                    skipped += 1
                    continue
                }
                block.recordsConsumed += 1
                recordsInTransaction += 1
                switch item {
                case .sample(let values):
                    block.rows.append((splitter.split(for: values), values))
                    block.payloadBytes += values.reduce(0) { $0 + $1.payloadByteCount }
                case .invalid(let error):
                    guard options.onError == .skip else {
                        queue.put(.failed(error))
                        return
                    }
                    badTotal += 1
                    if badTotal > options.maxErrors {
                        queue.put(
                            .failed(MBDataError(
                                .tooManyErrors, "more than \(options.maxErrors) bad records, the most allowed; the last: \(error)",
                                source: source.name, parameter: "IngestOptions.maxErrors")))
                        return
                    }
                    block.badRecords.append(error)
                }
                let closes = recordsInTransaction >= options.rowsPerTransaction
                if closes || block.payloadBytes >= blockPayloadLimit {
                    block.closesTransaction = closes
                    block.bytesRead = source.bytesRead
                    guard queue.put(.block(block)) else { return }
                    block = Block()
                    if closes { recordsInTransaction = 0 }
                }
            }
            if skipped < skip {
                queue.put(
                    .failed(MBDataError(
                        .invalidArgument,
                        "the log says an earlier run committed \(skip) records but the source now holds \(skipped); force the ingest to read it whole",
                        source: source.name, parameter: "IngestOptions.force")))
                return
            }
            block.closesTransaction = true
            block.bytesRead = source.bytesRead
            guard queue.put(.block(block)) else { return }
            queue.put(.finished(contentHash: source.contentHash, notes: source.notes, bytesRead: source.bytesRead))
        } catch {
            queue.put(.failed(error))
        }
    }
}
