import MBData
import Testing

@testable import MBDataServer

/// `mbdata serve PATH`: a dataset is served under ``Dataset/name(ofPath:)`` — the name a
/// mixture gives it — unless `NAME=PATH` names it; a name the protocol cannot carry is refused.
@Suite struct ServedDatasetNameTests {
    @Test func aPathIsServedUnderTheNameAMixtureGivesIt() throws {
        for path in ["data/web.mbdb", "a.b.mbdb", "data/web.mbdb/", "/abs/x-1.mbdb"] {
            let parsed = try ServeConfiguration.parseDataset(path)
            #expect(parsed.name == Dataset.name(ofPath: path) && parsed.path == path, "\(path)")
        }
        let named = try ServeConfiguration.parseDataset("web=data/other.mbdb")
        #expect(named.name == "web" && named.path == "data/other.mbdb")
    }

    @Test(arguments: [".hidden", "data/.hidden.mbdb", "/", "data/w b.mbdb"])
    func aNameTheProtocolCannotCarryIsRefused(path: String) {
        #expect {
            try ServeConfiguration.parseDataset(path)
        } throws: { error in
            (error as? MBDataError)?.message.contains("use name=path") == true
        }
    }
}
