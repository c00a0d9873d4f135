extension Config {
    /// The text of config bytes: the one encoding rule that `check`, `plan`, `apply` and the daemon
    /// share, so that no file is accepted by one and refused by another. The bytes must be UTF-8
    /// (TOML's encoding); invalid bytes are refused, naming the first line that holds them, never
    /// replaced by U+FFFD (which would turn a damaged address or name into a different one).
    public static func text(of bytes: [UInt8], file: String) throws(InputError) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        // A newline byte never occurs inside a multi-byte sequence, so lines validate on their own.
        var line = 1
        for part in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if String(validating: part, as: UTF8.self) == nil { break }
            line += 1
        }
        throw InputError(file: file, line: line, key: nil, message: "config file is not UTF-8 text (invalid bytes on this line)")
    }
}
