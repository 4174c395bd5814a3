import Foundation

/// One parser of outside bytes under fuzzing: `run` hands it arbitrary bytes. It may throw
/// (a refused input is the expected outcome for most bytes); it must never trap, hang or
/// allocate without bound.
public struct FuzzTarget: Sendable {
    public let name: String
    /// What the bytes are, for `mbdata-fuzz --list` and the corpus README.
    public let summary: String
    public let run: @Sendable (Data) throws -> Void

    public init(_ name: String, _ summary: String, run: @escaping @Sendable (Data) throws -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
    }

    /// Every target, by the area whose parsers it exercises.
    public static let all: [FuzzTarget] = shardTargets + ingestTargets + serveTargets

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}
