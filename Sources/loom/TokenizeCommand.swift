import ArgumentParser
import LoomModel

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the token ids of TEXT as a JSON array.")

    @OptionGroup var options: ModelOptions

    @Flag(name: .long, help: "Treat special tokens written in the text (like <|im_start|>) as plain text.")
    var noParseSpecial = false

    @Flag(name: .long, help: "Add BOS/EOS as the model's metadata asks; with it, the ids are the ones generate and /v1/completions feed the model for TEXT.")
    var addSpecial = false

    @Argument(help: "The text to tokenize.")
    var text: String

    func run() throws {
        let path = try options.modelPath()
        let file = try GGUFFile(path: path)
        let tokenizer = try Tokenizers.make(Vocabulary(metadata: file.metadata, path: path))
        let ids = try tokenizer.encode(text, as: PromptTokenization(addSpecial: addSpecial, parseSpecial: !noParseSpecial))
        print("[" + ids.map(String.init).joined(separator: ",") + "]")
    }
}
