/// Decides each sample's split: fixed, or `val` for a deterministic fraction by hash.
struct SplitAssigner {
    let fixed: String
    let fraction: Double?
    let keyIndex: Int?

    init(schema: Schema, options: IngestOptions) {
        fixed = options.split ?? "train"
        fraction = options.validationFraction
        keyIndex = schema.keyIndex
    }

    func split(for values: [SampleValue]) -> String {
        guard let fraction else { return fixed }
        var hash = XXH64(seed: 0x6d62_6461_7461)
        for value in keyIndex.map({ [values[$0]] }) ?? values {
            switch value {
            case .integer(let i): withUnsafeBytes(of: i.littleEndian) { hash.update($0) }
            case .real(let d): withUnsafeBytes(of: d.bitPattern.littleEndian) { hash.update($0) }
            case .text(let s): hash.update(Array(s.utf8))
            case .blob(let b): hash.update(b)
            }
        }
        let unit = Double(hash.finalize() >> 11) / Double(1 << 53)
        return unit < fraction ? "val" : "train"
    }
}
