import CoreMetrics
import Foundation
import MBData
import MBDataWire
import Metrics
import Prometheus
import Synchronization

/// The daemon's metrics, recorded through swift-metrics into a Prometheus registry of its
/// own (no global bootstrap, so several daemons can live in one test process).
final class ServeMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    /// Where other parts of the daemon (the shard origins) record their metrics.
    let factory: PrometheusMetricsFactory
    private let bytes = Mutex<[String: (compressed: Int, uncompressed: Int)]>([:])
    /// Rows committed per output in the last ``rateWindow``, for the rows-per-second gauge.
    private let recentRows = Mutex<[OutputKey: [(at: ContinuousClock.Instant, rows: Int)]]>([:])
    static let rateWindow = Duration.seconds(10)
    /// Packing statistics of each packed plan served, summed over the epochs laid out, and
    /// how many epochs, by dataset and plan fingerprint.
    private let packing = Mutex<[[String]: (statistics: PackingStatistics, epochs: Int)]>([:])

    private struct OutputKey: Hashable {
        var dataset: String
        var output: String
        var dimensions: [(String, String)] { [("dataset", dataset), ("output", output)] }
    }

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "mbdata_request_duration_seconds": [.microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10), .seconds(60)],
            "mbdata_batch_wait_seconds": [.microseconds(10), .microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .seconds(1)],
        ]
        self.factory = factory
    }

    /// Creates the counters of each dataset at zero, so /metrics lists them from the start.
    func register(datasets: [String]) {
        for dataset in datasets {
            for mode in [StreamMode.partition, .replicate, .share, .infer] {
                let dimensions = [("dataset", dataset), ("mode", mode.rawValue)]
                Counter(label: "mbdata_batches_served_total", dimensions: dimensions, factory: factory).increment(by: 0)
                Counter(label: "mbdata_bytes_served_total", dimensions: dimensions, factory: factory).increment(by: 0)
            }
            Counter(label: "mbdata_stalls_total", dimensions: [("dataset", dataset)], factory: factory).increment(by: 0)
            Counter(label: "mbdata_lease_expiries_total", dimensions: [("dataset", dataset)], factory: factory).increment(by: 0)
            Gauge(label: "mbdata_ready_queue_depth", dimensions: [("dataset", dataset)], factory: factory).record(0)
        }
        activeStreams(0)
    }

    /// The handles one stream records into, looked up once rather than per batch.
    struct Stream: Sendable {
        fileprivate let batches: CoreMetrics.Counter
        fileprivate let bytes: CoreMetrics.Counter
        fileprivate let wait: CoreMetrics.Timer
        fileprivate let stalls: CoreMetrics.Counter
        fileprivate let stallSeconds: CoreMetrics.FloatingPointCounter
        fileprivate let readyQueue: CoreMetrics.Gauge
        fileprivate let compressionRatio: CoreMetrics.Gauge
        let dataset: String
    }

    /// Each dataset and mode's handles, made once: a lease answer records into them for
    /// every batch, and making a handle looks it up in the registry and checks its name.
    private let streams = Mutex<[[String]: Stream]>([:])

    func stream(dataset: String, mode: StreamMode) -> Stream {
        streams.withLock { streams in
            let key = [dataset, mode.rawValue]
            if let stream = streams[key] { return stream }
            let stream = makeStream(dataset: dataset, mode: mode)
            streams[key] = stream
            return stream
        }
    }

    private func makeStream(dataset: String, mode: StreamMode) -> Stream {
        let dimensions = [("dataset", dataset), ("mode", mode.rawValue)]
        return Stream(
            batches: Counter(label: "mbdata_batches_served_total", dimensions: dimensions, factory: factory),
            bytes: Counter(label: "mbdata_bytes_served_total", dimensions: dimensions, factory: factory),
            wait: Timer(label: "mbdata_batch_wait_seconds", dimensions: [("dataset", dataset)], factory: factory),
            stalls: Counter(label: "mbdata_stalls_total", dimensions: [("dataset", dataset)], factory: factory),
            stallSeconds: FloatingPointCounter(label: "mbdata_stall_seconds", dimensions: [("dataset", dataset)], factory: factory),
            readyQueue: Gauge(label: "mbdata_ready_queue_depth", dimensions: [("dataset", dataset)], factory: factory),
            compressionRatio: Gauge(label: "mbdata_compression_ratio", dimensions: [("dataset", dataset)], factory: factory),
            dataset: dataset)
    }

    /// `batches` sent to a stream, `frameBytes` of LZ4 frames holding `uncompressedBytes`.
    func served(_ stream: Stream, batches: Int, frameBytes: Int, uncompressedBytes: Int) {
        stream.batches.increment(by: batches)
        stream.bytes.increment(by: frameBytes)
        let totals = bytes.withLock { totals in
            var entry = totals[stream.dataset] ?? (0, 0)
            entry.compressed += frameBytes
            entry.uncompressed += uncompressedBytes
            totals[stream.dataset] = entry
            return entry
        }
        stream.compressionRatio.record(Double(totals.uncompressed) / Double(max(1, totals.compressed)))
    }

    /// The time a stream waited for its next batch and the ready queue after it; a wait
    /// over a millisecond is a stall (the consumer was ready before the data).
    func waited(_ stream: Stream, _ wait: Duration, readyQueue depth: Int) {
        stream.wait.recordNanoseconds(wait.nanoseconds)
        stream.readyQueue.record(depth)
        guard wait > .milliseconds(1) else { return }
        stream.stalls.increment()
        stream.stallSeconds.increment(by: wait.seconds)
    }

    func served(dataset: String, mode: StreamMode, batches: Int, frameBytes: Int, uncompressedBytes: Int) {
        served(stream(dataset: dataset, mode: mode), batches: batches, frameBytes: frameBytes, uncompressedBytes: uncompressedBytes)
    }

    /// Creates the counters of an output at zero, so /metrics lists them once a job of it is known.
    func register(dataset: String, output: String) {
        let key = OutputKey(dataset: dataset, output: output)
        for label in ["mbdata_outputs_rows_total", "mbdata_outputs_batches_total", "mbdata_outputs_bytes_total"] {
            Counter(label: label, dimensions: key.dimensions, factory: factory).increment(by: 0)
        }
        recentRows.withLock { recent in
            if recent[key] == nil { recent[key] = [] }
        }
    }

    /// A batch's outputs committed: `rows` real rows from a body of `bodyBytes` bytes.
    func outputsCommitted(dataset: String, output: String, rows: Int, bodyBytes: Int) {
        let key = OutputKey(dataset: dataset, output: output)
        Counter(label: "mbdata_outputs_rows_total", dimensions: key.dimensions, factory: factory).increment(by: rows)
        Counter(label: "mbdata_outputs_batches_total", dimensions: key.dimensions, factory: factory).increment()
        Counter(label: "mbdata_outputs_bytes_total", dimensions: key.dimensions, factory: factory).increment(by: bodyBytes)
        let now = ContinuousClock.now
        recentRows.withLock { recent in
            var entries = recent[key, default: []]
            entries.removeFirst(entries.prefix { $0.at.duration(to: now) >= Self.rateWindow }.count)
            entries.append((now, rows))
            recent[key] = entries
        }
    }

    /// An outputs submission refused; `reason` is the error code it got.
    func outputsRefused(dataset: String, output: String, reason: String) {
        Counter(
            label: "mbdata_outputs_refused_total", dimensions: [("dataset", dataset), ("output", output), ("reason", reason)],
            factory: factory
        ).increment()
    }

    /// Sets each output's rows-per-second gauge to the rows committed in the last
    /// ``rateWindow`` over its length, so it falls back to 0 once a job stops.
    private func updateOutputRates() {
        let now = ContinuousClock.now
        let rates = recentRows.withLock { recent in
            recent = recent.mapValues { entries in entries.filter { $0.at.duration(to: now) < Self.rateWindow } }
            return recent.map { key, entries in (key, Double(entries.reduce(0) { $0 + $1.rows }) / Self.rateWindow.seconds) }
        }
        for (key, rate) in rates {
            Gauge(label: "mbdata_outputs_rows_per_second", dimensions: key.dimensions, factory: factory).record(rate)
        }
    }

    /// A packed plan laid out one more epoch: the plan's gauges become its statistics summed
    /// over every epoch laid out — packing efficiency (non-padding over all tokens of the
    /// rows), samples split and dropped, tokens dropped, rows, epochs.
    func packed(dataset: String, plan: String, statistics: PackingStatistics) {
        let key = [dataset, plan]
        let (sum, epochs) = packing.withLock { entries in
            let known = entries[key]
            let entry = (statistics: known.map { $0.statistics + statistics } ?? statistics, epochs: (known?.epochs ?? 0) + 1)
            entries[key] = entry
            return entry
        }
        let dimensions = [("dataset", dataset), ("plan", plan)]
        let gauges: [(String, Double)] = [
            ("mbdata_packing_efficiency", sum.efficiency), ("mbdata_packing_split_samples", Double(sum.splitSamples)),
            ("mbdata_packing_dropped_samples", Double(sum.droppedSamples)), ("mbdata_packing_dropped_tokens", Double(sum.droppedTokens)),
            ("mbdata_packing_rows", Double(sum.rows)), ("mbdata_packing_epochs", Double(epochs)),
        ]
        for (label, value) in gauges { Gauge(label: label, dimensions: dimensions, factory: factory).record(value) }
    }

    func lag(cursor: String, batches: Int) {
        Gauge(label: "mbdata_consumer_lag_batches", dimensions: [("cursor", cursor)], factory: factory).record(batches)
    }

    func leaseExpired(dataset: String, count: Int = 1) {
        guard count > 0 else { return }
        Counter(label: "mbdata_lease_expiries_total", dimensions: [("dataset", dataset)], factory: factory).increment(by: count)
    }

    func activeStreams(_ count: Int) {
        Gauge(label: "mbdata_active_streams", factory: factory).record(count)
    }

    func request(route: String, status: Int, took: Duration) {
        Timer(label: "mbdata_request_duration_seconds", dimensions: [("route", route), ("status", String(status))], factory: factory)
            .recordNanoseconds(took.nanoseconds)
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] {
        updateOutputRates()
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}

extension Duration {
    /// Whole nanoseconds, as swift-metrics timers record them.
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }

    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
