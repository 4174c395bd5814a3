import ArgumentParser
import Foundation
import MBData

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a dataset: SQLite integrity and every stored value against the schema.",
        discussion: "Exits 1 and lists the first problems when any are found.")

    @Argument(help: "The dataset file.")
    var dataset: String

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let report = try await Dataset(path: dataset).verify()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else if report.isValid {
                print("\(dataset): ok (\(report.samplesChecked) samples checked)")
            } else {
                print("\(dataset): \(report.problems.count + report.moreProblems) problems (\(report.samplesChecked) samples checked)")
                for problem in report.problems { print("  \(problem)") }
                if report.moreProblems > 0 { print("  … and \(report.moreProblems) more") }
            }
            if !report.isValid { throw ExitCode(ExitStatus.problemsFound) }
        }
    }
}
