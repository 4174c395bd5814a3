/// The output store that goes with `store`: outputs in PostgreSQL when the state is there
/// (every daemon of a cluster serves every job), else in the dataset files with every job
/// of `catalog`'s datasets registered, so an inference cursor id stays valid across restarts.
func makeOutputStore(
    state store: any StateStore, catalog: DatasetCatalog, clock: ServeClock, metrics: ServeMetrics
) async throws -> any OutputStore {
    if let shared = store as? PostgresStateStore { return PostgresOutputStore(store: shared, catalog: catalog, metrics: metrics) }
    let embedded = DatasetOutputStore(clock: clock, metrics: metrics)
    for served in await catalog.everyServed() { try await embedded.registerJobs(of: served) }
    return embedded
}
