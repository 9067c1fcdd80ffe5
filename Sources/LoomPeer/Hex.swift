import LoomTransfer

/// Region descriptors travel as hex on command lines and in the server's
/// `LISTENING`/`FABRIC` lines, so scripts can pass them along as words.
public enum Hex {
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ hex: some StringProtocol) throws(TransferError) -> [UInt8] {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else {
            throw TransferError(.invalidRequest, "\"\(hex.prefix(40))…\" is not hex: odd length \(chars.count); pass the descriptor exactly as the server printed it")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chars.count / 2)
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let high = nibble(chars[i]), let low = nibble(chars[i + 1]) else {
                throw TransferError(.invalidRequest, "\"\(hex.prefix(40))…\" is not hex (at character \(i)); pass the descriptor exactly as the server printed it")
            }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func nibble(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension RegionDescriptor {
    /// A descriptor from its hex form.
    public init(hex: some StringProtocol) throws {
        try self.init(serialized: Hex.decode(hex))
    }

    /// The hex form printed in `LISTENING`/`FABRIC` lines.
    public func hex() throws -> String {
        Hex.encode(try serialized())
    }
}
