/// A model an ``InferenceJob`` runs over a dataset: it turns one batch into that batch's
/// outputs.
///
/// The contract:
/// - `infer(_:context:)` may be called up to `concurrency` times at once, from different
///   tasks (`context.slot` tells the calls running at once apart: one model replica or device
///   stream per slot).
/// - It returns one tensor per field of the output's schema, each `[rows] + field.shape` of
///   the field's dtype, `rows` being `Batch.rowCount` (padding rows included; their
///   values are not written). An `_id` tensor may be added; it must equal the batch's.
///   `Tensor(name:shape:values:)` builds them from Swift arrays.
/// - Returning does not finish the batch: the job commits the outputs with the batch's
///   completion in one transaction, and only then is the batch finished. Throwing stops the
///   job (``InferenceJob/run(model:)``); what was committed before stays.
public protocol InferenceModel: Sendable {
    /// Outputs of one batch, by output field name; called up to `concurrency` times at once.
    func infer(_ batch: Batch, context: TrainingContext) async throws -> [String: Tensor]
}
