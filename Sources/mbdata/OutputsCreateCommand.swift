import ArgumentParser
import MBData

struct OutputsCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Add an empty output to a dataset, typed by an output schema.",
        discussion: """
            The schema file has the sample-schema format; every field must be numeric or bool with a fixed \
            shape, and there is no key (rows are keyed by the samples' _id).
            """)

    @OptionGroup var target: OutputTarget

    @Option(help: "The output schema (JSON).")
    var schema: String

    func run() async throws {
        try await reportingErrors {
            let outputSchema = try Schema(contentsOf: schema)
            let store = try Dataset(path: target.dataset)
            do {
                try await store.createOutput(target.name, schema: outputSchema)
            } catch let error as MBDataError where error.code == .invalidSchema {
                throw error.located(source: schema)
            }
            let fields = outputSchema.fields.map { "\($0.name) \($0.typeDescription)" }.joined(separator: ", ")
            printError("\(target.dataset): output \(target.name) created (table outputs_\(target.name): _id, \(fields))")
        }
    }
}
