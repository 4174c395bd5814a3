/// Records finished batches as trainers return, out of order.
package actor CursorTracker {
    private var checkpoint: LoaderCheckpoint

    package init(_ checkpoint: LoaderCheckpoint) { self.checkpoint = checkpoint }

    package func finish(epoch: Int, batch: Int) {
        guard !checkpoint.isFinished(epoch: epoch, batch: batch) else { return }
        var cursor = checkpoint.inProgress.first { $0.epoch == epoch } ?? .init(epoch: epoch)
        cursor.finish(batch)
        checkpoint.inProgress.removeAll { $0.epoch == epoch }
        checkpoint.inProgress.append(cursor)
        // Fold complete epochs, in order, into completedEpochs.
        while let next = checkpoint.inProgress.first(where: { $0.epoch == checkpoint.firstEpoch + checkpoint.completedEpochs }),
            next.lowWatermark >= checkpoint.batchesPerEpoch
        {
            checkpoint.inProgress.removeAll { $0.epoch == next.epoch }
            checkpoint.completedEpochs += 1
        }
        checkpoint.inProgress.sort { $0.epoch < $1.epoch }
    }

    package func snapshot() -> LoaderCheckpoint { checkpoint }
}
