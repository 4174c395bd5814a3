import Testing

@testable import MBData

/// One grammar for a mixture's items, spelt `PATH=WEIGHT` (`mbdata --mix`) or `NAME:WEIGHT`
/// (a daemon's `mix=`): what each reads and what each refuses, in the same words.
@Suite struct MixtureItemsTests {
    private static func names(_ items: [String], _ syntax: MixtureItems.Syntax) throws -> [String] {
        try MixtureItems.parse(items, syntax: syntax).map { "\($0.name)|\($0.weight)" }
    }

    @Test func bothSpellingsReadNamesAndWeights() throws {
        #expect(
            try Self.names(["data/web.mbdb=0.6", "a=b.mbdb=repeat:2.5", "books.mbdb=choose:10"], .commandLine)
                == ["data/web.mbdb|0.6", "a=b.mbdb|repeat:2.5", "books.mbdb|choose:10"])
        #expect(try Self.names(["web:0.6", "code:repeat:2.5", "books:choose:10"], .query) == ["web|0.6", "code|repeat:2.5", "books|choose:10"])
    }

    @Test(arguments: [
        ([""], "item 1 \"\" is not PATH=WEIGHT (it is empty)"),
        (["web.mbdb"], "item 1 \"web.mbdb\" is not PATH=WEIGHT: it has no '='"),
        (["=0.5"], "item 1 \"=0.5\" has no PATH before '='"),
        (["web.mbdb=half"], "WEIGHT \"half\" is not a proportion (0.6), repeat:R or choose:N"),
        (["web.mbdb=repeat:"], "WEIGHT \"repeat:\" is not"),
        (["web.mbdb=0.5", "code.mbdb=0.2", "web.mbdb=0.3"], "item 3 \"web.mbdb=0.3\" names web.mbdb again"),
    ])
    func theCommandLineSpellingRefuses(items: [String], message: String) {
        #expect {
            try MixtureItems.parse(items, syntax: .commandLine)
        } throws: { error in
            let error = error as? MBDataError
            return error?.code == .invalidArgument && error?.message.contains(message) == true
        }
    }

    @Test(arguments: [
        ("", "item 1 \"\" is not NAME:WEIGHT (it is empty)"),
        ("web:0.6,", "item 2 \"\" is not NAME:WEIGHT (it is empty)"),
        ("web:0.6,code", "item 2 \"code\" is not NAME:WEIGHT: it has no ':'"),
        (":0.5", "item 1 \":0.5\" has no NAME before ':'"),
        ("web:0.6,code:lots", "WEIGHT \"lots\" is not a proportion (0.6), repeat:R or choose:N"),
        ("web=0.6", "it has no ':'"),
        ("web:0.6,web:0.4", "item 2 \"web:0.4\" names web again"),
    ])
    func theQuerySpellingRefuses(text: String, message: String) {
        #expect {
            try MixtureItems.parse(Self.queryItems(text), syntax: .query)
        } throws: { error in
            let error = error as? MBDataError
            return error?.code == .invalidArgument && error?.message.contains(message) == true
        }
    }

    /// A `mix=` value's items, as the daemon's `MixtureQuery` splits them.
    private static func queryItems(_ text: String) -> [Substring] { text.split(separator: ",", omittingEmptySubsequences: false) }

    @Test func moreItemsThanAManifestListsAreRefused() throws {
        let most = (0..<MixtureItems.maxCount).map { "s\($0):1" }
        #expect(try MixtureItems.parse(most, syntax: .query).count == MixtureItems.maxCount)
        #expect(throws: MBDataError.self) { try MixtureItems.parse(most + ["extra:1"], syntax: .query) }
        #expect(throws: MBDataError.self) { try MixtureItems.parse([String](), syntax: .commandLine) }
    }
}
