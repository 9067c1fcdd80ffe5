/// Common English words, each one token (or close) in the BPE vocabularies
/// of small chat models, so a word count is a usable proxy for a token
/// count without shipping a tokenizer in the load generator.
enum WordLists {
    static let openers = [
        "Can you explain", "Tell me about", "What do you know about", "How would you describe",
        "Why do people care about", "Give me a short summary of", "What is the history of",
        "Write a few lines about", "How does one learn about", "What are the main ideas behind",
        "Could you compare", "What should a beginner know about",
    ]

    static let adjectives = [
        "small", "large", "quiet", "bright", "old", "new", "simple", "strange", "useful", "early",
        "modern", "local", "common", "famous", "gentle", "careful", "quick", "slow", "green", "cold",
        "warm", "public", "private", "natural", "human", "open", "hidden", "clear", "heavy", "light",
    ]

    static let nouns = [
        "river", "city", "garden", "machine", "language", "market", "forest", "music", "school",
        "bridge", "engine", "story", "island", "kitchen", "library", "mountain", "painting", "planet",
        "village", "window", "network", "road", "ship", "song", "teacher", "train", "tree", "water",
        "weather", "winter", "harbor", "farm", "clock", "letter", "museum", "ocean", "paper", "voice",
    ]

    static let verbs = [
        "changes", "carries", "builds", "follows", "holds", "keeps", "moves", "opens", "shapes",
        "shows", "starts", "supports", "teaches", "turns", "helps", "finds", "brings", "makes",
    ]

    static let adverbs = [
        "slowly", "often", "rarely", "quietly", "always", "still", "again", "together", "later",
        "early", "easily", "closely",
    ]

    static let connectors = [
        "and", "while", "because", "when", "although", "so", "until", "after", "before", "since",
    ]

    static let contexts = [
        "in simple terms", "for a curious child", "for a busy engineer", "in three sentences",
        "with one example", "as a short list", "from a historical view", "for a travel guide",
    ]
}
