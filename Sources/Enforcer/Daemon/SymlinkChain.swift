#if os(Linux)
import Glibc

/// How a path resolves through symbolic links, and which directory entries decide what it names.
///
/// For a Kubernetes ConfigMap volume, `/etc/fw/fwenforcer.conf` is a link to `..data/fwenforcer.conf`
/// and `..data` a link to `..2024_01_01_00_00_00.123/`; an update creates a new timestamped
/// directory and renames a new `..data` link over the old one. The entries are then
/// `(/etc/fw, fwenforcer.conf)`, `(/etc/fw, ..data)` and `(/etc/fw/..2024_…, fwenforcer.conf)`:
/// replacing any of them changes what the path names, and nothing else does.
struct SymlinkChain: Equatable {
    struct Entry: Hashable {
        /// A physical directory (no symlinks in it).
        var directory: String
        var name: String
    }

    /// Each symlink met, in order, then the final entry; or, when a component is missing, the entries
    /// up to and including the missing one.
    var entries: [Entry]
    /// The physical path the chain ends at, or nil when a component is missing or links loop.
    var target: String?

    /// The most links followed before giving up, as the kernel's ELOOP limit.
    static let maximumLinks = 40

    /// Resolves `path` (absolute, or relative to the working directory) one component at a time.
    static func resolve(_ path: String) -> SymlinkChain {
        var pending = components(of: path.hasPrefix("/") ? path : currentDirectory() + "/" + path)
        var current: [String] = []
        var entries: [Entry] = []
        var linksFollowed = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." { continue }
            if component == ".." {
                // `current` is physical, so ".." is its parent, as the kernel would take it.
                _ = current.popLast()
                continue
            }
            let directory = "/" + current.joined(separator: "/")
            let candidate = (current + [component]).joined(separator: "/")
            var info = stat()
            guard lstat("/" + candidate, &info) == 0 else {
                entries.append(Entry(directory: directory, name: component))
                return SymlinkChain(entries: entries, target: nil)
            }
            if info.st_mode & S_IFMT == S_IFLNK {
                entries.append(Entry(directory: directory, name: component))
                linksFollowed += 1
                guard linksFollowed <= maximumLinks, let destination = readLink("/" + candidate) else {
                    return SymlinkChain(entries: entries, target: nil)
                }
                if destination.hasPrefix("/") { current = [] }
                pending = components(of: destination) + pending
                continue
            }
            if pending.isEmpty {
                entries.append(Entry(directory: directory, name: component))
            }
            current.append(component)
        }
        return SymlinkChain(entries: entries, target: "/" + current.joined(separator: "/"))
    }

    private static func components(of path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, $0.count - 1) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
#endif
