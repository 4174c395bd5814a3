import GRDB

extension Dataset {
    /// Frees what SQLite caches for the file's open connections (up to 4 MiB of pages per
    /// connection): the pool's, once each is idle, and the batch readers' not in use
    /// (``BatchReaders``). Blocks: call it off the cooperative pool. A daemon calls it once its
    /// start-up scan of the ids is done, so that the pages that scan read — more the larger
    /// the dataset — do not stay resident while it serves.
    package func releaseMemory() {
        pool.releaseMemory()
        batchReaders.releaseMemory()
    }
}
