/// The file formats ``Dataset/exportOutput(_:format:to:)`` writes an output to.
///
/// Every format holds the output's rows ordered by `_id`, each value exactly as stored.
public enum OutputExportFormat: String, CaseIterable, Sendable {
    /// A directory of `.npy` files as numpy's `np.save` writes them (format 1.0,
    /// little-endian, C order): `_id.npy` (int64 `[N]`) and one `<field>.npy` per field
    /// (`[N]` followed by the field's shape). numpy has no bfloat16: a `bfloat16` field is
    /// written as float32 (`<f4`), every value exactly (a bfloat16 is the upper half of a float32).
    case npy
    /// One JSON object per line, `{"_id": 5, "pred": 3, "prob": [0.25, 0.75]}`: arrays as
    /// nested lists, bools as `true`/`false`, floats in their shortest text that reads back
    /// to the same value of the field's dtype, NaN and infinities as `NaN`, `Infinity` and
    /// `-Infinity` (which Python's `json` reads). bfloat16 values are written in float32's
    /// shortest form, which reads back exactly.
    case jsonl
    /// A header line `_id,<fields>`, then one line per row; a scalar cell is written as in
    /// ``jsonl``, an array cell is its JSON nested list in double quotes.
    case csv
}
