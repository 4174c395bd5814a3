import Foundation
import Testing

@testable import MBData

/// A mixture weight's text form (the CLI's, the manifest's and the checkpoint's) and the
/// bounds that keep untrusted weights from trapping.
@Suite struct MixtureWeightTests {
    @Test func theTextFormReadsBackExactly() throws {
        let weights: [MixtureWeight] = [0.6, 1, .proportion(0.1 + 0.2), .repeat(2.5), .repeat(1e-3), .choose(1000)]
        for weight in weights {
            #expect(MixtureWeight(weight.description) == weight, "\(weight)")
            let json = try JSONEncoder().encode([weight])
            #expect(try JSONDecoder().decode([MixtureWeight].self, from: json) == [weight])
        }
        #expect(MixtureWeight.repeat(2.5).description == "repeat:2.5" && MixtureWeight.choose(7).description == "choose:7")
        #expect(String(decoding: try JSONEncoder().encode([MixtureWeight.proportion(0.6)]), as: UTF8.self) == #"["0.6"]"#)
        for text in ["half", "repeat:", "choose:1.5", "pick:3", "", ":0.5", "0.5:"] {
            #expect(MixtureWeight(text) == nil, "\(text)")
        }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([MixtureWeight].self, from: Data(#"["choose:x"]"#.utf8)) }
    }

    @Test func weightsTooLargeForAnEpochAreRefusedNotTrapped() {
        let refused: [([MixtureWeight], Int?)] = [
            ([.repeat(1e300)], nil), ([.choose(Int.max)], nil), ([.choose(1 << 52), .choose(1 << 52)], nil),
            ([.proportion(1e308), .proportion(1e308)], nil), ([.proportion(1)], MixturePlan.maxEpochSize + 1),
        ]
        for (weights, epochSize) in refused {
            let sources = weights.enumerated().map { MixtureSource(name: "s\($0.offset)", sampleCount: 10, fingerprint: "f", weight: $0.element) }
            #expect(throws: MBDataError.self, "\(weights)") { try MixturePlan(sources: sources, epochSize: epochSize, seed: 0) }
        }
    }
}
