import LoomModel

/// A minimal GPT-2-style byte-level BPE vocabulary for tiny test models: the
/// 256 byte tokens, two merges, and ChatML special tokens.
public enum ByteLevelVocabulary {
    /// GPT-2's reversible byte → printable character mapping.
    public static let byteCharacters: [Character] = {
        var printable = Set<Int>(33...126)
        printable.formUnion(161...172)
        printable.formUnion(174...255)
        var next = 256
        return (0..<256).map { byte in
            if printable.contains(byte) { return Character(Unicode.Scalar(UInt32(byte))!) }
            defer { next += 1 }
            return Character(Unicode.Scalar(UInt32(next))!)
        }
    }()

    public static let merges = ["Ġ t", "h e"]
    public static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    public static let tokens: [String] = byteCharacters.map(String.init) + ["Ġt", "he"] + specials
    public static var endOfText: Int { tokens.count - 3 }
    public static var imEnd: Int { tokens.count - 1 }

    static func write(into w: inout GGUFWriter, extra: Int) {
        let all = tokens + (0..<extra).map { "<extra_\($0)>" }
        var types = [Int32](repeating: 1, count: all.count)
        for i in (tokens.count - specials.count)..<tokens.count { types[i] = 3 }
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("gpt2"))
        w.set("tokenizer.ggml.tokens", .array(all.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(types.map { .int32($0) }))
        w.set("tokenizer.ggml.merges", .array(merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(endOfText)))
        w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(endOfText)))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        w.set("tokenizer.chat_template", .string(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"))
    }
}
