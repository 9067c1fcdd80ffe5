/// The character classes the pre-tokenizer patterns test. llama.cpp derives
/// them from Python's `regex` module: \p{L}, \p{N}, \p{P} by general category
/// and \s as the White_Space property — the same properties Swift exposes on
/// `Unicode.Scalar`, so only characters assigned in a newer Unicode version
/// than llama.cpp's table can classify differently.
struct ScalarClass: OptionSet, Sendable {
    let rawValue: UInt8
    static let letter = ScalarClass(rawValue: 1)
    static let number = ScalarClass(rawValue: 2)
    static let whitespace = ScalarClass(rawValue: 4)
    static let punctuation = ScalarClass(rawValue: 8)
}

enum ScalarClasses {
    /// The Basic Multilingual Plane, precomputed: almost all text stays in it,
    /// and a table read is far cheaper than a Unicode property query.
    private static let bmp: [UInt8] = (0..<0x10000).map { compute(UInt32($0)).rawValue }

    static func of(_ scalar: UInt32) -> ScalarClass {
        scalar < 0x10000 ? ScalarClass(rawValue: bmp[Int(scalar)]) : compute(scalar)
    }

    private static func compute(_ value: UInt32) -> ScalarClass {
        guard let scalar = Unicode.Scalar(value) else { return [] }
        var result: ScalarClass = []
        if scalar.properties.isWhitespace { result.insert(.whitespace) }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            result.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            result.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            result.insert(.punctuation)
        default:
            break
        }
        return result
    }
}

/// GPT-2's reversible map between bytes and printable characters: byte-level
/// BPE vocabularies spell every byte as one of these 256 characters, so token
/// strings never contain raw spaces or control bytes.
enum ByteLevel {
    /// The character each byte is spelled with.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// UTF-8 of each byte's character, for building token keys without Strings.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { Array(String(Unicode.Scalar($0)!).utf8) }

    /// The inverse map, indexed by scalar value; -1 for characters outside it.
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar)] = Int16(byte) }
        return table
    }()

    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = Int(scalar.value)
        guard value < byteForScalar.count, byteForScalar[value] >= 0 else { return nil }
        return UInt8(byteForScalar[value])
    }
}

/// Decodes UTF-8 the way llama.cpp's `unicode_cpts_from_utf8` does for valid
/// input, keeping each scalar's byte offset so splits map back to bytes.
struct ScalarText {
    var scalars: [UInt32] = []
    /// `offsets[i]` is where scalar i starts; one extra entry marks the end.
    var offsets: [Int] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        scalars.reserveCapacity(bytes.count)
        offsets.reserveCapacity(bytes.count + 1)
        var i = 0
        while i < bytes.count {
            let lead = bytes[i]
            let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            var value = length == 1 ? UInt32(lead) : UInt32(lead) & (0xFF >> (length + 1))
            for k in 1..<max(length, 1) where i + k < bytes.count {
                value = value << 6 | UInt32(bytes[i + k] & 0x3F)
            }
            scalars.append(value)
            offsets.append(i)
            i += length
        }
        offsets.append(bytes.count)
    }
}
