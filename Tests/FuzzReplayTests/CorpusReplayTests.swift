import Foundation
import MBDataFuzzTargets
import Testing

/// `make test` replays every committed fuzz input (seeds and past crashers) through its
/// target: a parser that traps on one of them fails the run. No fuzzing happens here; that
/// is `make fuzz`.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    static func inputs(of target: String) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(
            at: corpus.appendingPathComponent(target), includingPropertiesForKeys: nil
        ).filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    @Test("every target has a committed corpus, and every corpus folder names a target")
    func corporaMatchTargets() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { !$0.hasPrefix(".") }
        #expect(Set(folders) == Set(FuzzTarget.all.map(\.name)))
        for target in FuzzTarget.all {
            #expect(try !Self.inputs(of: target.name).isEmpty, "no seed inputs for \(target.name)")
        }
    }

    @Test("replaying the corpus never traps", arguments: FuzzTarget.all.map(\.name))
    func replay(target name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        for input in try Self.inputs(of: name) {
            // Refusing an input is fine; returning at all is what is checked.
            _ = try? target.run(try Data(contentsOf: input))
        }
    }
}
