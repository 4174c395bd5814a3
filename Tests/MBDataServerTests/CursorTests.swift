import Foundation
import HummingbirdCore
import MBData
import MBDataTestSupport
import MBDataWire
import Testing

@testable import MBDataServer

@Suite struct CursorTests {
    static func state(batches: Int = 10, mode: StreamMode = .share) -> CursorState {
        let parameters = PlanParameters(seed: 1, batchSize: 8)
        return CursorState(
            cursor: CursorState.id(dataset: "d", group: "g", mode: mode, parameters: parameters, rank: 0, replica: 0), dataset: "d",
            group: "g", mode: mode, rank: 0, replica: 0, plan: parameters, planFingerprint: "xxh64:1", datasetVersion: 1,
            batchesPerEpoch: batches, epochs: [])
    }

    @Test func acksOutOfOrderMoveTheWatermarkOverEveryAckedBatch() {
        var state = Self.state()
        #expect(state.ack(epoch: 0, batches: [2, 1]) == 2)
        #expect(state.progress(epoch: 0).lowWatermark == 0)
        #expect(state.ack(epoch: 0, batches: [0, 2]) == 1)
        #expect(state.epochs == [.init(epoch: 0, lowWatermark: 3, finishedAbove: [])])
        #expect(state.ack(epoch: 0, batches: [5]) == 1)
        #expect(state.epochs == [.init(epoch: 0, lowWatermark: 3, finishedAbove: [5])])
    }

    /// A cursor's state is a watermark plus the acked batches above it: a million batches
    /// acked in queued requests — each out of order within its window, as a client's ack
    /// thread sends them — leave a state of a few bytes, whatever the epoch's size.
    @Test func aMillionAckedBatchesLeaveAStateOfAFewBytes() throws {
        var state = Self.state(batches: 1_000_000, mode: .partition)
        var generator = SystemRandomNumberGenerator()
        var largest = 0
        for window in stride(from: 0, to: 1_000_000, by: 64) {
            let batches = Array(window..<window + 64).shuffled(using: &generator)
            #expect(state.ack(epoch: 0, batches: Array(batches[..<40])) == 40)
            largest = max(largest, state.progress(epoch: 0).finishedAbove.count)
            #expect(state.ack(epoch: 0, batches: Array(batches[40...])) == 24)
        }
        #expect(largest < 64, "never more held above the watermark than one window")
        #expect(state.epochs == [.init(epoch: 0, lowWatermark: 1_000_000, finishedAbove: [])])
        #expect(try WireJSON.encode(state).count < 1024)
    }

    @Test func theSameParametersNameTheSameCursorAndOthersAnother() {
        let a = CursorState.id(dataset: "d", group: "g", mode: .partition, parameters: PlanParameters(seed: 1, batchSize: 8), rank: 0, replica: 0)
        #expect(a == CursorState.id(dataset: "d", group: "g", mode: .partition, parameters: PlanParameters(seed: 1, batchSize: 8), rank: 0, replica: 0))
        #expect(a != CursorState.id(dataset: "d", group: "g", mode: .partition, parameters: PlanParameters(seed: 1, batchSize: 8), rank: 1, replica: 0))
        #expect(a != CursorState.id(dataset: "d", group: "h", mode: .partition, parameters: PlanParameters(seed: 1, batchSize: 8), rank: 0, replica: 0))
        #expect(a != CursorState.id(dataset: "d", group: "g", mode: .partition, parameters: PlanParameters(seed: 2, batchSize: 8), rank: 0, replica: 0))
    }

    @Test func acksSurviveARestartButLeasesDoNot() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("state.sqlite")
        var book = CursorBook(store: try SQLiteStateStore(path: path), metrics: ServeMetrics())
        let id = try await book.cursor(Self.state(batches: 3)).cursor
        guard case .leased(_, let acked) = try await book.lease(book.state(id), epoch: 0, seconds: 30),
            case .leased(_, let held) = try await book.lease(book.state(id), epoch: 0, seconds: 30)
        else { Issue.record("no lease"); return }
        _ = try await book.ack(id, leases: [acked])

        book = CursorBook(store: try SQLiteStateStore(path: path), metrics: ServeMetrics())
        #expect(try await book.state(id).progress(epoch: 0).lowWatermark == 1)
        await #expect(throws: ServeError.self) { try await book.ack(id, leases: [held]) }
        guard case .leased(let batch, _) = try await book.lease(book.state(id), epoch: 0, seconds: 30) else { Issue.record("no lease"); return }
        #expect(batch == 1)
    }

    @Test func malformedParametersAreRefusedByName() throws {
        func error(_ query: String) -> String? {
            do {
                _ = try PlanRequest(query: URI("/x?" + query).queryParameters, leasing: false)
                return nil
            } catch let error as ServeError {
                return error.code + " " + error.message
            } catch { return "\(error)" }
        }
        #expect(error("batch_size=abc")?.contains("invalid_parameter query parameter batch_size") == true)
        #expect(error("seed=1")?.contains("batch_size") == true)
        #expect(error("batch_size=64&world=3")?.contains("parameter world") == true)
        #expect(error("batch_size=64&world=2&rank=2")?.contains("parameter rank") == true)
        #expect(error("batch_size=64&tail=bogus")?.contains("parameter tail") == true)
        #expect(error("batch_size=64&group=../x")?.contains("parameter group") == true)
        #expect(error("batch_size=64&mode=share")?.contains("parameter mode") == true)
        #expect(error("batch_size=64&world=2&rank=1&split=train") == nil)
    }

    @Test func aRestoredStateOutsideItsPlanIsRefused() throws {
        try Self.state().validate()
        var high = Self.state()
        high.epochs = [.init(epoch: 0, lowWatermark: 11, finishedAbove: [])]
        var negative = Self.state()
        negative.epochs = [.init(epoch: 0, lowWatermark: -1, finishedAbove: [])]
        var above = Self.state()
        above.epochs = [.init(epoch: 0, lowWatermark: 2, finishedAbove: [1, 12])]
        var twice = Self.state()
        twice.epochs = [.init(epoch: 0, lowWatermark: 2, finishedAbove: []), .init(epoch: 0, lowWatermark: 3, finishedAbove: [])]
        var huge = Self.state()
        huge.plan.batchSize = Int.max
        var rank = Self.state(mode: .partition)
        rank.rank = 5
        var group = Self.state()
        group.group = "../x y"
        var replica = Self.state(mode: .replicate)
        replica.replica = Int.max  // `replica + 1` trapped (found by the serve-cursor fuzz target)
        for state in [high, negative, above, twice, huge, rank, group, replica] {
            #expect(throws: ServeError.self) { try state.validate() }
        }
    }

    @Test func theTokenComparisonAcceptsOnlyTheExactBearer() {
        let token = Array("s3cret".utf8)
        #expect(BearerToken.matches("Bearer s3cret", token: token))
        #expect(!BearerToken.matches("Bearer s3cres", token: token))
        #expect(!BearerToken.matches("Bearer s3cret2", token: token))
        #expect(!BearerToken.matches("bearer s3cret", token: token))
        #expect(!BearerToken.matches(nil, token: token))
    }
}
