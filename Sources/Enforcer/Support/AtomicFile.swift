#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import SystemPackage

/// Replaces a small file atomically: a temporary file beside the target is written, fsynced and
/// renamed over it, then the directory is fsynced. Readers (an operator's `status`, node_exporter's
/// textfile collector) see the old content or the new, never a mix, and a crash mid-write leaves
/// the old file.
enum AtomicFile {
    static func write(_ bytes: [UInt8], to path: FilePath, mode: mode_t = 0o644) throws {
        let target = path.string
        let directory = path.removingLastComponent().string.isEmpty ? "." : path.removingLastComponent().string
        // Dot-prefixed: node_exporter's collector reads only *.prom, and a reader listing the
        // directory skips hidden files.
        let temporary = "\(directory)/.\(path.lastComponent?.string ?? "file").tmp.\(getpid())"
        // O_EXCL and O_NOFOLLOW: the temporary is always a new file of ours. A leftover of a crash is
        // removed first (unlink removes a link itself, never what it points to); a symlink or a
        // hard link planted under that name is never written through.
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW
        var fd = open(temporary, flags, mode)
        if fd == -1 && errno == EEXIST {
            unlink(temporary)
            fd = open(temporary, flags, mode)
        }
        if fd == -1 { throw SystemCallError(call: "open", subject: temporary, code: Errno(rawValue: errno)) }
        do {
            defer { closeDescriptor(fd) }
            // The umask must not narrow the mode: readers are other users (node_exporter).
            _ = try retryingInterrupts("fchmod", temporary) { fchmod(fd, mode) }
            var offset = 0
            while offset < bytes.count {
                let written = try retryingInterrupts("write", temporary) {
                    bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                }
                offset += written
            }
            try retryingInterrupts("fsync", temporary) { fsync(fd) }
            try retryingInterrupts("rename", temporary) { rename(temporary, target) }
        } catch {
            unlink(temporary)
            throw error
        }
        // Makes the rename itself durable. /run is tmpfs, where this is cheap; elsewhere it matters.
        let directoryFD = try retryingInterrupts("open", directory) { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { closeDescriptor(directoryFD) }
        try retryingInterrupts("fsync", directory) { fsync(directoryFD) }
    }

    /// The whole file, or nil when it does not exist.
    /// `value` as the runtime files (state, pending record, audit report) are written: pretty,
    /// key-sorted JSON with ISO 8601 dates and a final newline.
    static func json(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(value)) + [UInt8(ascii: "\n")]
    }

    static func read(_ path: FilePath) throws(SystemCallError) -> [UInt8]? {
        let target = path.string
        let fd = open(target, O_RDONLY | O_CLOEXEC)
        if fd == -1 {
            if errno == ENOENT { return nil }
            throw SystemCallError(call: "open", subject: target, code: Errno(rawValue: errno))
        }
        defer { closeDescriptor(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = try retryingInterrupts("read", target) {
                chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }
}
