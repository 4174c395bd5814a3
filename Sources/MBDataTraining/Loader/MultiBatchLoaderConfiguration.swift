extension MultiBatchLoader {
    /// How a loader runs: the plan it follows (``PlanParameters``), the epochs, this
    /// loader's rank, how many trainer calls run at once and how batches are prepared
    /// ahead (``PrefetchConfiguration``).
    ///
    /// `batchSize`, `seed`, `world`, `split`, `tail` and `shuffle` read and write
    /// ``plan``; `prefetchDepth`, `workers` and `padLengths` read and write ``prefetch``.
    public struct Configuration: Sendable {
        /// The plan: seed, global batch size, world, split, tail policy, shuffle.
        public var plan: PlanParameters
        /// Epochs to run.
        public var epochs: Range<Int>
        /// This loader's rank, in 0..<`plan.world`. Default 0.
        public var rank: Int = 0
        /// Batches consumed at once (k). Default 1.
        public var concurrency: Int = 1
        /// Default `.asynchronous`.
        public var mode: Mode = .asynchronous
        /// Batches prepared ahead (`depth`), the threads preparing them (`workers`) and fields
        /// padded to a fixed length (`padLengths`). Its `compressionLevel` is not used: a
        /// loader's local batches never leave the process and are not compressed.
        public var prefetch = PrefetchConfiguration()
        /// On a trainer failure: false (default) lets calls in flight finish; true cancels them.
        public var cancelInFlightOnFailure = false
        /// Runs on every sample before collation (live datasets only), in parallel.
        public var sampleTransform: SampleTransform?
        /// Runs on every decoded batch before the trainer sees it, in parallel.
        public var batchTransform: BatchTransform?
        /// The datasets a mixture draws from, with their weights; empty (default) for a loader
        /// of one dataset. MBData's `MultiBatchLoader(configuration:resumingFrom:)` reads a
        /// mixture live, and each batch gets a `_source` tensor (int32 `[B]`: the row's index in
        /// this list, -1 on padding rows) beside `_id`.
        public var mixture: [MixtureComponent] = []
        /// Draws per mixture epoch with proportion weights (default: the sum of the sources'
        /// sample counts); with `repeat`/`choose` weights it must equal their total. Only with
        /// a ``mixture``.
        public var epochSize: Int?
        /// Packs a variable-length field into rows of fixed length (`["tokens": 2048]`); nil
        /// (default) for unpacked batches. MBData's loaders of a dataset or a mixture then read
        /// packed batches, as `MultiBatchLoader(dataset:packing:configuration:)` and
        /// `MultiBatchLoader(packing:configuration:)` do, and a loader over shards refuses a
        /// set packed otherwise or not at all; `batchSize` counts rows.
        public var packing: PackingSpec?

        /// A configuration for `plan` over `epochs`.
        public init(plan: PlanParameters, epochs: Range<Int>) {
            self.plan = plan
            self.epochs = epochs
        }

        /// A configuration with the plan's other settings at their defaults.
        public init(batchSize: Int, seed: UInt64 = 0, epochs: Range<Int>) {
            self.init(plan: PlanParameters(seed: seed, batchSize: batchSize), epochs: epochs)
        }

        /// `plan.batchSize`: global batch size (samples per step across all ranks).
        public var batchSize: Int {
            get { plan.batchSize }
            set { plan.batchSize = newValue }
        }
        /// `plan.seed`: the shuffle seed. Default 0.
        public var seed: UInt64 {
            get { plan.seed }
            set { plan.seed = newValue }
        }
        /// `plan.world`: ranks sharing each global batch. Default 1.
        public var world: Int {
            get { plan.world }
            set { plan.world = newValue }
        }
        /// `plan.split`: the split to draw from; nil (default) for every sample.
        public var split: String? {
            get { plan.split }
            set { plan.split = newValue }
        }
        /// `plan.tail`. Default `.drop`.
        public var tail: TailPolicy {
            get { plan.tail }
            set { plan.tail = newValue }
        }
        /// `plan.shuffle`. Default true; false keeps ingest order.
        public var shuffle: Bool {
            get { plan.shuffle }
            set { plan.shuffle = newValue }
        }
        /// `prefetch.depth`: batches prepared ahead of the trainers. Default 8.
        public var prefetchDepth: Int {
            get { prefetch.depth }
            set { prefetch.depth = newValue }
        }
        /// `prefetch.workers`: threads preparing batches. Default: the number of active cores.
        public var workers: Int {
            get { prefetch.workers }
            set { prefetch.workers = newValue }
        }
        /// `prefetch.padLengths`: fields with a variable first dimension to pad to a fixed length.
        public var padLengths: [String: Int] {
            get { prefetch.padLengths }
            set { prefetch.padLengths = newValue }
        }

        /// `batch` after the batch transform, with the batch's own generator.
        package func transformed(_ batch: Batch) throws -> Batch {
            guard let batchTransform else { return batch }
            var random = SeededGenerator(
                planSeed: plan.seed, epoch: batch.epoch, key: Int64(batch.index) << 20 | Int64(batch.rank), salt: 0x4241_5443)
            return try batchTransform(batch, &random)
        }

        /// `values` of sample `id` after the sample transform, with the sample's own generator.
        package func transformed(sample values: [SampleValue], id: Int64, epoch: Int) throws -> [SampleValue] {
            guard let sampleTransform else { return values }
            var random = SeededGenerator(planSeed: plan.seed, epoch: epoch, key: id, salt: 0x5A4D_504C)
            return try sampleTransform(values, &random)
        }

        package func validate() throws {
            guard concurrency > 0 else {
                throw MBDataError(.invalidArgument, "concurrency must be positive", parameter: "MultiBatchLoader.Configuration.concurrency")
            }
            guard (0..<plan.world).contains(rank) else {
                throw MBDataError(.invalidArgument, "rank \(rank) outside 0..<\(plan.world)", parameter: "MultiBatchLoader.Configuration.rank")
            }
            guard !epochs.isEmpty else {
                throw MBDataError(.invalidArgument, "no epochs to run", parameter: "MultiBatchLoader.Configuration.epochs")
            }
            if epochSize != nil && mixture.isEmpty {
                throw MBDataError(.invalidArgument, "an epoch size applies to a mixture only", parameter: "MultiBatchLoader.Configuration.epochSize")
            }
            try plan.validate()
        }
    }
}
