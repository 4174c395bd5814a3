import HTTPTypes
import Hummingbird
import HummingbirdCore
import MBData
import MBDataWire

/// The query parameters of a batch or lease request, checked.
package struct PlanRequest: Sendable {
    var parameters: PlanParameters
    var epoch: Int
    var rank: Int
    var group: String
    var mode: StreamMode
    var replica: Int
    var start: Int
    /// The batch index a stream stops before (`end`; default: the epoch's end).
    var end: Int
    var leaseSeconds: Double
    /// The output an inference lease writes (mode `infer` only).
    var output: String?
    /// How the plan packs a variable-length field into rows (`pack=FIELD:L`); nil unpacked.
    var packing: PackingSpec?
    /// The mixture the plan draws from (`mix=NAME:WEIGHT,…`, `epoch_size=N`); nil for one dataset.
    var mixture: MixtureQuery?
    /// Whether a stream's spooled batches go out as their places in the shard files
    /// (`delivery=local`, protocol 1.3) rather than as their bytes.
    var localDelivery: Bool

    typealias Query = FlatDictionary<Substring, Substring>

    /// The epochs a request, an ack or a restored cursor may name.
    static let epochs = 0...Int(Int32.max)
    /// The replicas a replicate request may name, and so the replica indices.
    static let replicas = 0..<1024

    /// The parameters an inference lease takes only at their defaults: an inference job is
    /// epoch 0 of a plan for one consumer group of world 1.
    static let fixedInInfer: [(name: String, value: Substring)] = [
        ("world", "1"), ("rank", "0"), ("epoch", "0"), ("group", "default"), ("replica", "0"), ("start", "0"),
    ]

    /// Batch streams read `mode` from the query (partition or replicate); leases are share,
    /// or infer with `mode=infer` (any other `mode` of a lease is ignored).
    init(query: Query, leasing: Bool) throws {
        func integer(_ name: String, default fallback: Int?, in range: ClosedRange<Int>) throws -> Int {
            guard let text = query[Substring(name)] else {
                guard let fallback else { throw ServeError.invalidParameter(name, "an integer in \(range)", got: nil) }
                return fallback
            }
            guard let value = Int(text), range.contains(value) else {
                throw ServeError.invalidParameter(name, "an integer in \(range.lowerBound)...\(range.upperBound)", got: text)
            }
            return value
        }
        func name(_ key: String, default fallback: String?) throws -> String? {
            guard let text = query[Substring(key)] else { return fallback }
            guard ServeConfiguration.isValidName(text) else {
                throw ServeError.invalidParameter(key, "1–64 letters, digits, '.', '_' or '-', starting with a letter or digit", got: text)
            }
            return String(text)
        }

        let inferring = leasing && query["mode"] == "infer"
        if inferring {
            for (name, value) in Self.fixedInInfer {
                guard let text = query[Substring(name)], text != value, Int(value).map({ Int(text) != $0 }) ?? true else { continue }
                throw ServeError(
                    .badRequest, "invalid_parameter",
                    "query parameter \(name): not used in infer mode (expected \(value) or nothing), got \"\(text.prefix(64))\"")
            }
        }
        let batchSize = try integer("batch_size", default: nil, in: 1...(1 << 20))
        let seedText = query["seed"] ?? "0"
        guard let seed = UInt64(seedText) else { throw ServeError.invalidParameter("seed", "an unsigned 64-bit integer", got: seedText) }
        let world = try integer("world", default: 1, in: 1...65536)
        guard batchSize % world == 0 else {
            throw ServeError.invalidParameter("world", "a divisor of batch_size \(batchSize)", got: query["world"])
        }
        rank = try integer("rank", default: 0, in: 0...(world - 1))
        epoch = try integer("epoch", default: 0, in: Self.epochs)
        let tailText = query["tail"] ?? (inferring ? "pad" : "drop")
        guard let tail = TailPolicy(rawValue: String(tailText)) else {
            throw ServeError.invalidParameter("tail", "drop or pad", got: tailText)
        }
        let shuffleText = query["shuffle"] ?? (inferring ? "false" : "true")
        guard let shuffle = ["true": true, "1": true, "false": false, "0": false][String(shuffleText)] else {
            throw ServeError.invalidParameter("shuffle", "true or false", got: shuffleText)
        }
        parameters = PlanParameters(
            seed: seed, batchSize: batchSize, world: world, tail: tail, split: try name("split", default: nil), shuffle: shuffle)
        group = try name("group", default: nil) ?? "default"
        start = try integer("start", default: 0, in: 0...Int(Int32.max))
        end = try integer("end", default: Int(Int32.max), in: 0...Int(Int32.max))
        packing = try Self.packing(query)
        if inferring, packing != nil {
            throw ServeError.invalidParameter(
                PlanQuery.packName, "nothing in infer mode (an inference job writes one output row per sample, so its batches are not packed)",
                got: query[Substring(PlanQuery.packName)])
        }
        mixture = try Self.mixture(query)
        if inferring, mixture != nil {
            throw ServeError.invalidParameter(MixtureQuery.mixName, "nothing in infer mode (an inference job reads one dataset)", got: query[Substring(MixtureQuery.mixName)])
        }
        switch query["delivery"] {
        case nil, "stream": localDelivery = false
        case "local" where !leasing: localDelivery = true
        case let text:
            throw ServeError.invalidParameter("delivery", leasing ? "nothing on a lease (a batch stream takes it)" : "stream or local", got: text)
        }
        if leasing {
            mode = inferring ? .infer : .share
            replica = 0
            if inferring {
                guard let text = query["output"], Self.isValidOutputName(text) else {
                    throw ServeError.invalidParameter(
                        "output", "an output name (a letter, then up to 63 letters, digits or '_')", got: query["output"])
                }
                output = String(text)
            }
            let secondsText = query["lease_seconds"] ?? "30"
            guard let seconds = Double(secondsText), seconds >= 1, seconds <= 3600 else {
                throw ServeError.invalidParameter("lease_seconds", "a number of seconds in 1...3600", got: secondsText)
            }
            leaseSeconds = seconds
        } else {
            let modeText = query["mode"] ?? "partition"
            guard let mode = StreamMode(rawValue: String(modeText)), mode == .partition || mode == .replicate else {
                throw ServeError.invalidParameter("mode", "partition or replicate (share and infer use POST …/lease)", got: modeText)
            }
            self.mode = mode
            let replicas = try integer("replicas", default: 1, in: 1...Self.replicas.upperBound)
            replica = try integer("replica", default: 0, in: 0...(replicas - 1))
            if mode == .partition && replica != 0 {
                throw ServeError.invalidParameter("replica", "0 in partition mode (use mode=replicate)", got: query["replica"])
            }
            leaseSeconds = 0
        }
    }

    /// The packing `pack=FIELD:L`, `pack_window=W` and `pack_overlong=split|drop` name, by
    /// the rule `mbdata shard --pack` follows (``PackingSpec/parse(_:separator:window:overlong:)``);
    /// nil without `pack` (and then the other two are refused).
    private static func packing(_ query: Query) throws -> PackingSpec? {
        let windowName = PlanQuery.packWindowName
        let overlongName = PlanQuery.packOverlongName
        guard let text = query[Substring(PlanQuery.packName)] else {
            for name in [windowName, overlongName] where query[Substring(name)] != nil {
                throw ServeError.invalidParameter(name, "nothing without pack=FIELD:L", got: query[Substring(name)])
            }
            return nil
        }
        let windowText = query[Substring(windowName)]
        let overlongText = query[Substring(overlongName)] ?? Substring(OverlongPolicy.split.rawValue)
        do throws(PackingSpec.TextError) {
            var window = SequencePacker.defaultWindow
            if let windowText {
                guard let parsed = Int(windowText) else { throw PackingSpec.TextError.window }
                window = parsed
            }
            return try PackingSpec.parse(text, separator: ":", window: window, overlong: String(overlongText))
        } catch .fieldAndLength {
            throw ServeError.invalidParameter(PlanQuery.packName, PackingSpec.expectedFieldAndLength(separator: ":"), got: text)
        } catch .window {
            throw ServeError.invalidParameter(windowName, PackingSpec.expectedWindow, got: windowText)
        } catch .overlong {
            throw ServeError.invalidParameter(overlongName, PackingSpec.expectedOverlong, got: overlongText)
        }
    }

    /// The mixture `mix=NAME:WEIGHT,…` and `epoch_size=N` name; nil without `mix` (and then
    /// `epoch_size` is refused). Names are checked as dataset names; the catalog resolves them.
    private static func mixture(_ query: Query) throws -> MixtureQuery? {
        let epochSizeName = MixtureQuery.epochSizeName
        guard let text = query[Substring(MixtureQuery.mixName)] else {
            if let size = query[Substring(epochSizeName)] { throw ServeError.invalidParameter(epochSizeName, "nothing without mix=", got: size) }
            return nil
        }
        var epochSize: Int?
        if let sizeText = query[Substring(epochSizeName)] {
            guard let size = Int(sizeText), size > 0 else { throw ServeError.invalidParameter(epochSizeName, "a positive integer", got: sizeText) }
            epochSize = size
        }
        let mixture: MixtureQuery
        do {
            mixture = try MixtureQuery(parsing: text, epochSize: epochSize)
        } catch let error as MBDataError {
            throw ServeError(
                .badRequest, "invalid_parameter", "query parameter \(MixtureQuery.mixName): \(error.message); expected \(MixtureQuery.expected)")
        }
        if let bad = mixture.sources.first(where: { !ServeConfiguration.isValidName(Substring($0.name)) }) {
            let expected = "dataset names of 1–64 letters, digits, '.', '_' or '-'"
            throw ServeError.invalidParameter(MixtureQuery.mixName, expected, got: Substring(bad.name))
        }
        return mixture
    }

    /// Output names: `[A-Za-z][A-Za-z0-9_]{0,63}`, the rule of field names; never a path.
    static func isValidOutputName(_ name: Substring) -> Bool {
        guard let first = name.first, name.count <= 64, first.isASCII, first.isLetter else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }
}
