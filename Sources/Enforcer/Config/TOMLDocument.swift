import CTOML
import TOMLKit
#if canImport(Glibc)
import Glibc
#endif

/// A problem in an input file, located for the operator: `FILE:LINE: key: message`.
public struct InputError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let key: String?
    public let message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + message
    }
}

/// A parsed TOML file with the means to locate and report problems in it. Readers consume keys as
/// they go; `rejectUnknown` then names any key nobody asked for (typo protection).
struct TOMLDocument {
    let file: String
    let root: TOMLTable
    let map: SourceMap
    /// The long string arrays read without toml++ (see ``TOMLArraySplice``); nil when not asked for.
    let splice: TOMLArraySplice?

    /// Frees the parsed document. TOMLKit 0.6 never does: `TOMLTable(string:)` allocates a
    /// `toml::table` with `new`, `TOMLTable` has no deinit, and its C layer exports no free
    /// function, so each parse leaked the whole tree (about 140 bytes per address: 14 MiB per
    /// reload of a 100,000-peer config, growing the daemon without bound). Call it once, after the
    /// last use of the document and of every table or value read from it (`defer` in the parser).
    ///
    /// The pointer is `TOMLTable`'s internal `tablePointer`, found by reflection; if a TOMLKit
    /// release renames it, nothing is freed (a leak again, never a crash), and
    /// `ConfigMemoryTests` fails. Freeing goes through the object's own virtual destructor, as
    /// `delete` does: `toml::node`'s first virtual member is `~node()`, so by the Itanium C++ ABI
    /// its vtable holds the complete-object destructor in slot 0 and the deleting one in slot 1.
    func release() { Self.delete(root) }

    static func delete(_ table: TOMLTable) {
        guard let node = nodePointer(of: table) else { return }
        let vtable = node.load(as: UnsafePointer<UnsafeRawPointer>.self)
        let deletingDestructor = unsafeBitCast(vtable[1], to: (@convention(c) (UnsafeMutableRawPointer) -> Void).self)
        deletingDestructor(node)
    }

    /// A string value, read without TOMLKit's leak: its `.string` copies the C string that
    /// `nodeAsString` strdup()s and never frees it (some 40 bytes per address of every parse).
    /// The same C function is called here, and its result freed. Falls back to `.string` if the
    /// node pointer cannot be found (see `release`).
    static func string(_ value: any TOMLValueConvertible) -> String? {
        guard value.type == .string else { return nil }
        let v = value.tomlValue
        guard let node = nodePointer(of: v) else { return v.string }
        guard let copy = nodeAsString(node) else { return nil }
        defer { free(UnsafeMutableRawPointer(mutating: copy)) }
        return String(cString: copy)
    }

    /// `TOMLValue.tomlValuePointer` (internal to TOMLKit). Reflection costs microseconds a value,
    /// too slow for 100,000 addresses, so the pointer is loaded from the value's first word (its
    /// first stored property), once that layout has been checked against reflection.
    static func nodePointer(of value: TOMLValue) -> OpaquePointer? {
        if pointerIsFirstWord { return withUnsafeBytes(of: value) { $0.load(as: OpaquePointer.self) } }
        return reflectedPointer(of: value)
    }

    private static func reflectedPointer(of value: TOMLValue) -> OpaquePointer? {
        for child in Mirror(reflecting: value).children where child.label == "tomlValuePointer" {
            return child.value as? OpaquePointer
        }
        return nil
    }

    static let pointerIsFirstWord: Bool = {
        guard MemoryLayout<TOMLValue>.size >= MemoryLayout<OpaquePointer>.size,
              let probe = try? TOMLTable(string: "a = \"x\"") else { return false }
        defer { delete(probe) }
        guard let value = probe["a"]?.tomlValue, let reflected = reflectedPointer(of: value) else { return false }
        return withUnsafeBytes(of: value) { $0.load(as: OpaquePointer.self) } == reflected
    }()

    static func nodePointer(of table: TOMLTable) -> UnsafeMutableRawPointer? {
        for child in Mirror(reflecting: table).children where child.label == "tablePointer" {
            if let p = child.value as? OpaquePointer { return UnsafeMutableRawPointer(p) }
        }
        return nil
    }

    /// `spliceLongArrays`: long arrays of plain strings are read by ``TOMLArraySplice``, and
    /// `stringArray` answers them; for documents that read string arrays only through it (the
    /// config, not the catalog).
    init(text: String, file: String, spliceLongArrays: Bool = false) throws(InputError) {
        self.file = file
        if let bad = TOMLPreflight.firstFailure(in: text) {
            throw InputError(file: file, line: bad.line, key: nil, message: "TOML syntax: \(bad.message)")
        }
        let splice = spliceLongArrays ? TOMLArraySplice(text) : nil
        self.splice = splice
        do {
            root = try TOMLTable(string: splice?.text ?? text)
        } catch let e as TOMLParseError {
            throw InputError(file: file, line: e.source.begin.line, key: nil,
                             message: "TOML syntax: \(e.description) (column \(e.source.begin.column))")
        } catch {
            throw InputError(file: file, line: nil, key: nil, message: "TOML syntax: \(error)")
        }
        map = SourceMap(text: text)
    }

    func error(_ key: String?, _ message: String, value: String? = nil) -> InputError {
        let line: Int?
        if let key, let value { line = map.line(of: key, value: value) } else if let key { line = map.line(of: key) } else { line = nil }
        return InputError(file: file, line: line, key: key.map(displayKey), message: message)
    }

    /// `rule[3].ports` → `[[rule]] #4 ports`: the reader counts array tables from one. The `]` is
    /// looked for after the `[`: a quoted key such as `"a]b[c"` trapped here (found by `make fuzz`).
    private func displayKey(_ key: String) -> String {
        guard let open = key.firstIndex(of: "["), let close = key[open...].firstIndex(of: "]"),
              let n = Int(key[key.index(after: open)..<close]) else { return key }
        let name = key[..<open]
        let rest = key[key.index(after: close)...].drop { $0 == "." }
        return "[[\(name)]] #\(n + 1)" + (rest.isEmpty ? "" : " \(rest)")
    }

    func rejectUnknown(in table: TOMLTable, path: String, allowed: Set<String>) throws(InputError) {
        for key in table.keys.sorted() where !allowed.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            let hint = Self.closest(key, in: allowed).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw error(full, "unknown key\(hint); allowed here: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func table(_ parent: TOMLTable, _ key: String, path: String, required: Bool = false) throws(InputError) -> TOMLTable? {
        guard let v = parent[key] else {
            if required { throw error(path, "missing section [\(path)]") }
            return nil
        }
        guard let t = v.table else { throw error(path, "must be a table, found \(v.type)") }
        return t
    }

    func string(_ parent: TOMLTable, _ key: String, path: String) throws(InputError) -> String? {
        guard let v = parent[key] else { return nil }
        guard let s = Self.string(v) else { throw error(path, "must be a string, found \(v.type)") }
        return s
    }

    func bool(_ parent: TOMLTable, _ key: String, path: String) throws(InputError) -> Bool? {
        guard let v = parent[key] else { return nil }
        guard let b = v.bool else { throw error(path, "must be true or false, found \(v.type)") }
        return b
    }

    func int(_ parent: TOMLTable, _ key: String, path: String) throws(InputError) -> Int? {
        guard let v = parent[key] else { return nil }
        guard let i = v.int else { throw error(path, "must be an integer, found \(v.type)") }
        return i
    }

    func stringArray(_ parent: TOMLTable, _ key: String, path: String) throws(InputError) -> [String]? {
        guard let v = parent[key] else { return nil }
        guard let a = v.array else { throw error(path, "must be a list of strings, found \(v.type)") }
        if let splice, a.count == 1, let marker = Self.string(a[0]), let strings = splice.strings(forMarker: marker) {
            return strings
        }
        var out: [String] = []
        for (i, item) in a.enumerated() {
            guard let s = Self.string(item) else {
                throw error(path, "item \(i + 1) must be a string, found \(item.type)", value: nil)
            }
            out.append(s)
        }
        return out
    }

    /// The allowed name nearest to a misspelt one, when it is near enough to be a likely typo.
    static func closest(_ word: String, in candidates: some Collection<String>) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(lower, c.lowercased())
            if d <= max(1, c.count / 3), best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    /// Edit distance counting a swap of neighbours as one edit (optimal string alignment), since
    /// transposed letters are the commonest typo in names like `WBE`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
