import Testing

@testable import MBData

/// The one name a dataset file goes by (a mixture's source, a served dataset, `explain`'s
/// entries), on the paths where three separate spellings of it used to differ.
@Suite struct DatasetNameTests {
    @Test(arguments: [
        ("web.mbdb", "web"), ("data/web.mbdb", "web"), ("/abs/data/web.mbdb", "web"), ("a.b.mbdb", "a.b"),
        (".hidden", ".hidden"), (".hidden.mbdb", ".hidden"), ("data/web.mbdb/", "web"), ("data/web//", "web"),
        ("web", "web"), ("web.", "web."), ("dir.d/web", "web"), ("..", ".."), ("/", ""), ("", ""),
    ])
    func aPathsNameIsItsLastComponentWithoutTheExtension(path: String, name: String) {
        #expect(Dataset.name(ofPath: path) == name)
    }

    @Test func aMixtureSourceAndTheDaemonNameADatasetAlike() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let dataset = try Dataset(path: directory.path("a.b.mbdb"), create: true)
        #expect(dataset.mixtureName == "a.b" && MixtureComponent(dataset: dataset, weight: 1).name == "a.b")
    }
}
