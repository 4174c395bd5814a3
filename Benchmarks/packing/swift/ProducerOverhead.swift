import Foundation
import MBData

/// The mixture's read path alone (issue 14 §6's overhead, without the loader): the live
/// producers of one dataset and of the `parts` mixture (DB cut in three parts of 60%, 25%
/// and 15%, each drawn whole, so both read the same rows) build every batch of epoch 0 on
/// this thread — ids or draws, the SQLite reads, collation, the LZ4 frame and its xxh64 —
/// the two alternating each round. One JSON line per round and case: CPU seconds of the
/// process over the epoch, of setting the producer up (plan, ids, schema), and of working
/// out every batch's sample ids alone (the plan's share: draws and permutation lookups).
func runProducerOverhead(database: String, schema: String, jsonl: String, batch: Int, seed: UInt64, rounds: Int) async throws {
    let single = try Dataset(path: database)
    let parts = try await keptParts(schema: schema, jsonl: jsonl, weights: mixtureWeights, names: mixtureNames, beside: database)
    let components = zip(parts, mixtureWeights).map { MixtureComponent(dataset: $0, weight: .proportion($1)) }
    let samples = try await single.info().sampleCount
    let parameters = PlanParameters(seed: seed, batchSize: batch)
    for round in 0..<rounds {
        for name in ["one", "parts"] {
            let setupStart = processCPUSeconds()
            let produce: (PlanItem) throws -> ReadyBatch
            let ids: (Int) -> Int
            let batches: Int
            if name == "one" {
                let plan = try await single.plan(parameters)
                let producer = try await LiveBatchProducer(dataset: single, plan: plan)
                (produce, batches) = (producer.produce, plan.plan.batchesPerEpoch)
                ids = { plan.sampleIDs(epoch: 0, batch: $0).count }
            } else {
                let plan = try await MixtureBatchPlan.resolve(components, epochSize: samples, parameters: parameters)
                let producer = try await MixtureBatchProducer(plan: plan, components: components)
                (produce, batches) = (producer.produce, plan.plan.batchesPerEpoch)
                ids = { plan.sampleIDs(epoch: 0, batch: $0).count }
            }
            let setup = processCPUSeconds() - setupStart
            let idsStart = processCPUSeconds()
            var idCount = 0
            for index in 0..<batches { idCount += ids(index) }
            let idsSeconds = processCPUSeconds() - idsStart
            precondition(idCount >= batches)
            let start = processCPUSeconds()
            var rows = 0
            for index in 0..<batches { rows += try produce(PlanItem(epoch: 0, batch: index, rank: 0)).sampleCount }
            report([
                "mode": "producer", "case": name, "round": round, "batch": batch, "batches": batches, "rows": rows,
                "cpu_seconds": processCPUSeconds() - start, "setup_cpu_seconds": setup, "ids_cpu_seconds": idsSeconds,
            ])
        }
    }
}
