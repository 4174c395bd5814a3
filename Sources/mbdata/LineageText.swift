import Foundation
import MBData

/// The text `mbdata explain` prints: one line per sample, in columns.
enum LineageText {
    /// A step's samples, after a heading with the step, its epoch and (packed) efficiency.
    static func render(_ batch: BatchLineage) -> String {
        var heading = "epoch \(batch.epoch) step \(batch.step) of \(batch.batchesPerEpoch): ranks \(batch.ranks.map(String.init).joined(separator: ",")), \(batch.rowsPerRank) rows each"
        if let rowLength = batch.rowLength, let efficiency = batch.efficiency {
            heading += String(format: " of %d tokens, efficiency %.2f%%", rowLength, efficiency * 100)
        }
        if batch.paddingRows > 0 { heading += ", \(batch.paddingRows) padding rows" }
        return ([heading] + table(batch.entries, packed: batch.rowLength != nil)).joined(separator: "\n")
    }

    /// A sample's appearances in an epoch; `dataset` names a mixture's source.
    static func render(_ entries: [LineageEntry], id: Int64, dataset: String? = nil, epoch: Int, packed: Bool) -> String {
        let key = entries.first?.key.map { " (key \($0))" } ?? ""
        let sample = "sample _id \(id)" + (dataset.map { " of \($0)" } ?? "")
        guard !entries.isEmpty else {
            let reasons = dataset == nil ? "another split, a dropped tail, or dropped by packing" : "not drawn this epoch, another split, or a dropped tail"
            return "\(sample) is in no step of epoch \(epoch) (\(reasons))"
        }
        let steps = Set(entries.map(\.step)).sorted().map(String.init).joined(separator: ", ")
        return (["\(sample)\(key): epoch \(epoch), step\(entries.count > 1 ? "s" : "") \(steps)"] + table(entries, packed: packed))
            .joined(separator: "\n")
    }

    private static func table(_ entries: [LineageEntry], packed: Bool) -> [String] {
        var header = ["step", "rank", "row"]
        if packed { header += ["segment", "column", "offset", "length"] }
        header += ["dataset", "_id", "key"]
        // A mixture's rows: which pass over their source each draw belongs to.
        let mixed = entries.contains { $0.pass != nil }
        if mixed { header.append("pass") }
        header.append("position")
        let rows = entries.map { entry -> [String] in
            var cells = [entry.step, entry.rank, entry.row].map(String.init)
            if packed {
                cells += [entry.segment, entry.column, entry.offset, entry.length].map { value in value.map { String($0) } ?? "-" }
            }
            cells += [entry.dataset, String(entry.id), entry.key ?? "-"]
            if mixed { cells.append(entry.pass.map(String.init) ?? "-") }
            return cells + [String(entry.position)]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { cells in
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
    }
}
