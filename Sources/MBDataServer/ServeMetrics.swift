import CoreMetrics
import Foundation
import MBDataWire
import Metrics
import Prometheus
import Synchronization

/// The daemon's metrics, recorded through swift-metrics into a Prometheus registry of its
/// own (no global bootstrap, so several daemons can live in one test process).
final class ServeMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let bytes = Mutex<[String: (compressed: Int, uncompressed: Int)]>([:])

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
            for mode in [StreamMode.partition, .replicate, .share] {
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
        let dataset: String
    }

    func stream(dataset: String, mode: StreamMode) -> Stream {
        let dimensions = [("dataset", dataset), ("mode", mode.rawValue)]
        return Stream(
            batches: Counter(label: "mbdata_batches_served_total", dimensions: dimensions, factory: factory),
            bytes: Counter(label: "mbdata_bytes_served_total", dimensions: dimensions, factory: factory),
            wait: Timer(label: "mbdata_batch_wait_seconds", dimensions: [("dataset", dataset)], factory: factory),
            stalls: Counter(label: "mbdata_stalls_total", dimensions: [("dataset", dataset)], factory: factory),
            stallSeconds: FloatingPointCounter(label: "mbdata_stall_seconds", dimensions: [("dataset", dataset)], factory: factory),
            readyQueue: Gauge(label: "mbdata_ready_queue_depth", dimensions: [("dataset", dataset)], factory: factory),
            dataset: dataset)
    }

    func served(_ stream: Stream, frameBytes: Int, uncompressedBytes: Int) {
        stream.batches.increment()
        stream.bytes.increment(by: frameBytes)
        compression(dataset: stream.dataset, frameBytes: frameBytes, uncompressedBytes: uncompressedBytes)
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

    func served(dataset: String, mode: StreamMode, frameBytes: Int, uncompressedBytes: Int) {
        served(stream(dataset: dataset, mode: mode), frameBytes: frameBytes, uncompressedBytes: uncompressedBytes)
    }

    private func compression(dataset: String, frameBytes: Int, uncompressedBytes: Int) {
        let totals = bytes.withLock { totals in
            var entry = totals[dataset] ?? (0, 0)
            entry.compressed += frameBytes
            entry.uncompressed += uncompressedBytes
            totals[dataset] = entry
            return entry
        }
        Gauge(label: "mbdata_compression_ratio", dimensions: [("dataset", dataset)], factory: factory)
            .record(Double(totals.uncompressed) / Double(max(1, totals.compressed)))
    }

    func lag(cursor: String, batches: Int) {
        Gauge(label: "mbdata_consumer_lag_batches", dimensions: [("cursor", cursor)], factory: factory).record(batches)
    }

    func leaseExpired(dataset: String) {
        Counter(label: "mbdata_lease_expiries_total", dimensions: [("dataset", dataset)], factory: factory).increment()
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
