import MBDataTraining

/// A plan's parameters as the `plan` object of a cursor document spells them:
/// `{"seed", "batch_size", "world", "tail", "split", "shuffle"}`, `split` absent for every
/// sample.
struct PlanBody: Codable {
    var seed: UInt64
    var batchSize: Int
    var world: Int
    var tail: TailPolicy
    var split: String?
    var shuffle: Bool

    private enum CodingKeys: String, CodingKey {
        case seed, world, tail, split, shuffle
        case batchSize = "batch_size"
    }

    init(_ parameters: PlanParameters) {
        seed = parameters.seed
        batchSize = parameters.batchSize
        world = parameters.world
        tail = parameters.tail
        split = parameters.split
        shuffle = parameters.shuffle
    }

    var parameters: PlanParameters {
        PlanParameters(seed: seed, batchSize: batchSize, world: world, tail: tail, split: split, shuffle: shuffle)
    }
}
