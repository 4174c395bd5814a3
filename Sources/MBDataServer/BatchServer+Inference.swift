import Foundation
import Hummingbird
import HTTPTypes
import MBData
import MBDataWire
import NIOCore

/// The routes of inference (schemas/serve-protocol.md §8): leases of an inference job's
/// batches, the submission of a batch's outputs, and the job's cursor.
extension BatchServer {
    /// `POST /v1/datasets/{name}/lease?mode=infer&output=…`
    func inferenceLease(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        guard !drain.isDraining else { throw ServeError.draining }
        let (job, planRequest) = try await inferenceJob(request, context)
        let inference = self.inference
        return try await leaseAnswer(
            try await inference.lease(job, seconds: planRequest.leaseSeconds), source: .dataset(job.served), plan: ServedPlan(job.plan),
            batches: job.plan.plan.batchesPerEpoch, cursor: job.cursor, mode: .infer, epoch: 0, rank: 0
        ) { await inference.release(lease: $0) }
    }

    /// `GET /v1/datasets/{name}/cursor?mode=infer&output=…`: the job's state, the job made if new.
    func inferenceCursor(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        let (job, _) = try await inferenceJob(request, context)
        return try Self.json(await inference.state(job))
    }

    /// The job an infer lease's parameters name, made if new.
    private func inferenceJob(_ request: Request, _ context: ServeRequestContext) async throws -> (ServedInferenceJob, PlanRequest) {
        let served = try await catalog.served(Self.parameter("name", context))
        let planRequest = try PlanRequest(query: request.uri.queryParameters, leasing: true)
        guard let output = planRequest.output else {
            throw ServeError.invalidParameter("mode", "infer, with an output", got: request.uri.queryParameters["mode"])
        }
        return (try await inference.job(dataset: served, output: output, parameters: planRequest.parameters), planRequest)
    }

    /// Acks, `PUT` and `DELETE` of an inference cursor: `400 invalid_body`.
    func refuseInference(_ context: ServeRequestContext) async throws {
        let id = String(Self.parameter("id", context))
        guard try await inference.job(id) == nil else {
            throw ServeError(.badRequest, "invalid_body", "cursor \(id) is an inference cursor: an inference cursor advances by submitting outputs")
        }
    }

    /// `POST /v1/cursors/{id}/outputs`: checks the lease, decodes the body, then commits the
    /// outputs and the batch's completion in one transaction of the output store. Every
    /// refusal leaves the store as it was.
    func submitOutputs(_ request: Request, _ context: ServeRequestContext) async throws -> Response {
        let id = String(Self.parameter("id", context))
        guard let job = try await inference.job(id) else {
            if let state = try? await book.state(id) {
                throw ServeError(
                    .badRequest, "invalid_body", "cursor \(id) is a \(state.mode.rawValue) cursor: outputs are submitted to an inference cursor (mode=infer)")
            }
            throw ServeError.unknownCursor(id)
        }
        do {
            let lease = try OutputsBody.lease(request.headers[.mbdataLease])
            // Checked before the body is read, so a consumer whose lease is gone learns it at
            // once; the commit checks it again, which is the check that counts.
            let batch = try await inference.leasedBatch(lease, of: job)
            let encoding = try OutputsBody.Encoding(contentType: request.headers[.contentType])
            let body = try await collectOutputs(request)
            let limit = configuration.maxOutputBytes
            let tensors = try await runBlocking { try OutputsBody.tensors(body, encoding: encoding, limit: limit) }
            let committed: CommittedOutputs
            do {
                committed = try await inference.commit(tensors, batch: batch, lease: lease, of: job)
            } catch let error as MBDataError {
                throw refusal(error, job: job)
            }
            metrics.outputsCommitted(dataset: job.served.name, output: job.output, rows: committed.rows, bodyBytes: body.count)
            return try Self.json(
                OutputReceipt(cursor: id, batch: batch, rows: committed.rows, finished: committed.finished, batches: job.plan.plan.batchesPerEpoch))
        } catch {
            let refused = ServeError.from(error, store: store)
            metrics.outputsRefused(dataset: job.served.name, output: job.output, reason: refused.code)
            throw refused
        }
    }

    /// What a client sees of a commit the library or the store refused (nothing of it was written).
    private func refusal(_ error: MBDataError, job: ServedInferenceJob) -> ServeError {
        switch error.code {
        case .schemaMismatch:
            return ServeError(.badRequest, "invalid_outputs", error.message, field: error.field)
        case .storage:
            return ServeError.stateUnavailable("cannot write the outputs of dataset \(job.served.name): \(error.message)", after: error)
        default:
            return ServeError.from(error, store: store)
        }
    }

    /// The body of an outputs submission, at most `maxOutputBytes` (413 beyond).
    private func collectOutputs(_ request: Request) async throws -> [UInt8] {
        var request = request
        let limit = configuration.maxOutputBytes
        do {
            return Array(try await request.collectBody(upTo: limit).readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw OutputsBody.tooLarge(limit)
        }
    }
}
