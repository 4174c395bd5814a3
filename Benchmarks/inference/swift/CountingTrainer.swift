import MBData

/// The read side alone: takes each batch, reads one byte at each end of every tensor, counts
/// its real rows and returns. Nothing is written.
struct CountingTrainer: Trainer {
    /// Real (non-padding) rows of the batches taken.
    let rows = RowCounter()

    func train(_ batch: Batch, context: TrainingContext) async throws {
        var touched = 0
        for tensor in batch.tensors.values where tensor.byteCount > 0 {
            touched &+= tensor.withUnsafeBytes { Int($0[0]) &+ Int($0[$0.count - 1]) }
        }
        // `touched` can never be -1; using it keeps the reads from being optimised away.
        rows.add(batch.sampleCount + (touched == -1 ? 1 : 0))
    }
}
