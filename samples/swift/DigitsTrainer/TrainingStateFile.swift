import Foundation
import MBData

/// The state file: weights and loader checkpoint in one JSON document, replaced atomically
/// (``DurableFile``), so a kill at any moment leaves a consistent pair — never new weights with
/// an old checkpoint. The float bit patterns are saved beside the decimal weights, so that a
/// resumed run continues from exactly the same bits.
enum TrainingStateFile {
    /// What the file holds beyond ``TrainingState``: the exact bits of the weights and bias.
    private struct ExactBits: Codable {
        var weightBits: [UInt32]?
        var biasBits: [UInt32]?
    }

    static func save(_ state: TrainingState, to path: String) throws {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as? [String: Any] ?? [:]
        object["weightBits"] = state.weights.map(\.bitPattern)
        object["biasBits"] = state.bias.map(\.bitPattern)
        try DurableFile.replace(path, with: JSONSerialization.data(withJSONObject: object))
    }

    /// The saved state, with weights and bias from their bit patterns when present; nil when
    /// there is no file.
    static func load(from path: String) throws -> TrainingState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var state = try JSONDecoder().decode(TrainingState.self, from: data)
        let bits = try JSONDecoder().decode(ExactBits.self, from: data)
        if let weightBits = bits.weightBits, let biasBits = bits.biasBits {
            state.weights = weightBits.map(Float.init(bitPattern:))
            state.bias = biasBits.map(Float.init(bitPattern:))
        }
        return state
    }
}
