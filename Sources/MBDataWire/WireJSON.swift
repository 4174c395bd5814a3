import Foundation

/// The JSON coders of the protocol's bodies (schemas/serve-protocol.md): keys sorted, as
/// the daemon has always written them. Each wire type spells its own keys (snake_case), so
/// no key strategy rewrites names a client chose (a split called `valSet` stays `valSet`).
public enum WireJSON {
    /// Encodes `value` as the daemon writes it: sorted keys, no whitespace.
    public static func encode(_ value: some Encodable) throws -> Data {
        try encoder.encode(value)
    }

    /// Decodes a body of the protocol; throws the decoder's error on anything else.
    public static func decode<Value: Decodable>(_ type: Value.Type, from data: Data) throws -> Value {
        try JSONDecoder().decode(type, from: data)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}
