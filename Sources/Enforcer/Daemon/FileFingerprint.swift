#if os(Linux)
import Glibc

/// What a polling watcher compares between two looks at its files: where each path's symlinks
/// lead, the identity, size, mode, owner and times of the file there, and the SHA-256 of its
/// content. The hash catches what the times cannot: two writes of the same size within one tick of
/// a coarse file system clock.
struct FileFingerprint: Equatable {
    struct Entry: Equatable {
        var path: String
        /// The file the path resolves to; nil when it does not resolve (missing, a loop).
        var resolved: String?
        var device: UInt64 = 0
        var inode: UInt64 = 0
        var size: Int64 = 0
        var mode: UInt32 = 0
        var owner: UInt32 = 0
        /// Modification and status-change times, in nanoseconds since the epoch.
        var modified: Int64 = 0
        var changed: Int64 = 0
        /// Content hash of a regular file; nil for anything else or when it cannot be read.
        var sha256: String?
    }

    var entries: [Entry]

    /// Looks at every path now. Never fails: what cannot be examined is recorded as such, and its
    /// appearing later is a difference.
    static func of(_ paths: [String]) -> FileFingerprint {
        FileFingerprint(entries: paths.map(entry))
    }

    private static func entry(_ path: String) -> Entry {
        var entry = Entry(path: path)
        guard let resolved = SymlinkChain.resolve(path).target else { return entry }
        entry.resolved = resolved
        // O_NONBLOCK: a FIFO put in the file's place must not block the daemon.
        let fd = open(resolved, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return entry }
        defer { closeDescriptor(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return entry }
        entry.device = UInt64(info.st_dev)
        entry.inode = UInt64(info.st_ino)
        entry.size = Int64(info.st_size)
        entry.mode = info.st_mode
        entry.owner = info.st_uid
        entry.modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        entry.changed = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        guard info.st_mode & S_IFMT == S_IFREG else { return entry }
        var hash = SHA256()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == -1 && errno == EINTR { continue }
            guard count >= 0 else { return entry }
            if count == 0 { break }
            hash.update(chunk[0..<count])
        }
        entry.sha256 = hash.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        return entry
    }
}
#endif
