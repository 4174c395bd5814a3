import Testing

@testable import MBData

/// `TrainingContext.inFlight` and `MultiBatchLoader.inFlight`: the calls running, within
/// 1…concurrency while a run goes on, 0 after it.
@Suite struct InFlightCountTests {
    /// Holds its first `concurrency` calls until all of them have started (so the loader is
    /// seen with every slot busy), and records the counts each call sees.
    actor InFlightTrainer: Trainer {
        private(set) var atStart: [Int] = []
        private(set) var live: [Int] = []
        private var loader: MultiBatchLoader?
        private var held: [CheckedContinuation<Void, Never>] = []
        private let concurrency: Int

        init(concurrency: Int) { self.concurrency = concurrency }

        func watch(_ loader: MultiBatchLoader) { self.loader = loader }

        func train(_ batch: Batch, context: TrainingContext) async throws {
            atStart.append(context.inFlight)
            if let loader { live.append(loader.inFlight) }
            if atStart.count < concurrency {
                await withCheckedContinuation { held.append($0) }
            } else if atStart.count == concurrency {
                for call in held { call.resume() }
                held = []
            }
        }
    }

    @Test(arguments: [1, 3])
    func theCountStaysWithinTheConcurrencyAndEndsAtZero(k: Int) async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(k: k, mode: .asynchronous))
        let trainer = InFlightTrainer(concurrency: k)
        await trainer.watch(loader)
        #expect(loader.inFlight == 0)
        try await loader.run(trainer: trainer)
        let atStart = await trainer.atStart
        #expect(atStart.count == 34, "17 batches of 100 an epoch, 2 epochs")
        #expect(atStart.allSatisfy { (1...k).contains($0) }, "\(atStart)")
        #expect(atStart.prefix(k).sorted() == Array(1...k), "the first k calls start before any returns")
        #expect(await trainer.live.allSatisfy { (1...k).contains($0) })
        #expect(loader.inFlight == 0)
    }
}
