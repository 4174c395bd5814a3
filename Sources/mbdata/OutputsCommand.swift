import ArgumentParser

struct OutputsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outputs",
        abstract: "Create, list, drop and export a dataset's outputs: tables of inference results keyed by the samples' _id.",
        discussion: """
            An output is the table outputs_<name> in the dataset file, one row per sample that has a result, \
            queryable with sqlite3: select avg(s.label = o.pred) from samples s join outputs_preds o using (_id).
            """,
        subcommands: [OutputsCreateCommand.self, OutputsListCommand.self, OutputsDropCommand.self, OutputsExportCommand.self])
}

/// The dataset file and the output a subcommand of `outputs` works on.
struct OutputTarget: ParsableArguments {
    @Argument(help: "The dataset file.")
    var dataset: String

    @Option(help: "The output's name: a letter, then letters, digits or _ (64 at most); its table is outputs_<name>.")
    var name: String
}
