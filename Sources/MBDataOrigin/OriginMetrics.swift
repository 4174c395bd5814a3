import CoreMetrics

/// What origins and the cache record, through swift-metrics into the daemon's factory:
/// bytes fetched, cache hits and misses (per frame read), evictions, retries and refusals.
package struct OriginMetrics: Sendable {
    private let bytesFetched: Counter
    private let hits: Counter
    private let misses: Counter
    private let evictions: Counter
    private let retries: Counter
    private let refusals: Counter
    private let cachedBytes: Gauge

    /// The counters, created at zero so that `/metrics` lists them from the start.
    package init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        bytesFetched = Counter(label: "mbdata_origin_bytes_fetched_total", factory: factory)
        hits = Counter(label: "mbdata_origin_cache_hits_total", factory: factory)
        misses = Counter(label: "mbdata_origin_cache_misses_total", factory: factory)
        evictions = Counter(label: "mbdata_origin_cache_evictions_total", factory: factory)
        retries = Counter(label: "mbdata_origin_retries_total", factory: factory)
        refusals = Counter(label: "mbdata_origin_refusals_total", factory: factory)
        cachedBytes = Gauge(label: "mbdata_origin_cache_bytes", factory: factory)
        for counter in [bytesFetched, hits, misses, evictions, retries, refusals] { counter.increment(by: 0) }
        cachedBytes.record(0)
    }

    func fetched(_ bytes: Int) { bytesFetched.increment(by: bytes) }
    func hit() { hits.increment() }
    func miss() { misses.increment() }
    func evicted() { evictions.increment() }
    func retried() { retries.increment() }
    func refused() { refusals.increment() }
    func cached(_ bytes: Int) { cachedBytes.record(bytes) }
}
