#if os(Linux)
import Glibc
import SystemPackage

/// The config file could be changed by someone other than root, so the daemon refuses it, as sshd
/// refuses a private key others can read: whoever can write the config can open the firewall.
public struct InsecureConfigFile: Error, Equatable, CustomStringConvertible {
    /// The path as given.
    public var path: String
    /// The file it resolves to through symlinks; this is what was checked.
    public var resolvedPath: String
    public var ownerUID: UInt32
    /// Permission bits, e.g. 0o664.
    public var mode: UInt32
    /// Whether it is a regular file at all.
    public var isRegularFile: Bool

    public var description: String {
        let shown = resolvedPath == path ? path : "\(path) (resolves to \(resolvedPath))"
        guard isRegularFile else {
            return "refusing config \(shown): it is not a regular file"
        }
        var problems: [String] = []
        if ownerUID != 0 { problems.append("it is owned by \(ownerName(ownerUID)), not root") }
        let writers = [mode & 0o020 != 0 ? "group" : nil, mode & 0o002 != 0 ? "others" : nil].compactMap { $0 }
        if !writers.isEmpty {
            problems.append("its mode \(octal(mode)) lets \(writers.joined(separator: " and ")) write it")
        }
        return "refusing config \(shown): \(problems.joined(separator: " and ")); whoever can write it "
            + "controls this host's firewall. Fix: chown root:root \(resolvedPath); chmod 600 \(resolvedPath) "
            + "(or 644 to let other users read it)"
    }
}

/// A directory on the way to the config that someone other than root could rearrange: a warning
/// rather than a refusal, because such directories are common (a Kubernetes ConfigMap volume is
/// mode 0777) and the file check already covers the usual mistake.
public struct ConfigDirectoryWarning: Equatable, CustomStringConvertible, Sendable {
    public var directory: String
    public var ownerUID: UInt32
    public var mode: UInt32

    public var description: String {
        "directory \(directory) (owner \(ownerName(ownerUID)), mode \(octal(mode))) lets users other than "
            + "root replace the config; fix: chown root:root \(directory); chmod go-w \(directory)"
    }
}

/// Checks that a config file can only be changed by root, as DESIGN §7 requires: after symlinks are
/// resolved it must be a regular file owned by uid 0 and not writable by group or others (0600 or
/// 0644, say).
public enum ConfigFileSecurity {
    /// A config file that passed the check, and the bytes read from the descriptor that was checked.
    public struct CheckedFile: Sendable {
        public var bytes: [UInt8]
        /// Directories on the way that users other than root could rearrange.
        public var warnings: [ConfigDirectoryWarning]
    }

    /// Checks `path`; returns warnings about the directories it resolves through.
    ///
    /// - Throws: ``InsecureConfigFile`` when the file fails the check, ``SystemCallError`` when it
    ///   cannot be examined (e.g. it does not exist).
    @discardableResult
    public static func check(_ path: FilePath) throws -> [ConfigDirectoryWarning] {
        try read(path).warnings
    }

    /// Checks `path` and returns its content, reading the file once: the path is resolved through
    /// its symlinks, the file it resolves to is opened with `O_NOFOLLOW`, and the owner and mode are
    /// taken from that descriptor (`fstat`), which the bytes are then read from. A file swapped
    /// between the check and the read (a writer replacing it by name) cannot be read unchecked:
    /// what was checked is what is returned. A link put in its place after the resolution fails
    /// with `ELOOP`, and the next change event reads again.
    ///
    /// - Throws: ``InsecureConfigFile`` or ``SystemCallError``, as ``check(_:)``.
    public static func read(_ path: FilePath) throws -> CheckedFile {
        let given = path.string
        let chain = SymlinkChain.resolve(given)
        guard let resolved = chain.target else {
            var info = stat()
            let code = stat(given, &info) == -1 ? Errno(rawValue: errno) : .tooManySymbolicLinkLevels
            throw SystemCallError(call: "stat", subject: given, code: code)
        }
        // O_NONBLOCK: opening a FIFO put there must not block the daemon; fstat refuses it below.
        let fd = try retryingInterrupts("open", resolved) { open(resolved, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        defer { closeDescriptor(fd) }
        var info = stat()
        try retryingInterrupts("fstat", resolved) { fstat(fd, &info) }
        let insecure = InsecureConfigFile(
            path: given, resolvedPath: resolved, ownerUID: info.st_uid, mode: info.st_mode & 0o7777,
            isRegularFile: info.st_mode & S_IFMT == S_IFREG)
        if !insecure.isRegularFile || insecure.ownerUID != 0 || insecure.mode & 0o022 != 0 {
            throw insecure
        }
        return CheckedFile(bytes: try readAll(fd, name: resolved), warnings: directoryWarnings(chain))
    }

    private static func readAll(_ fd: Int32, name: String) throws(SystemCallError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = try retryingInterrupts("read", name) {
                chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }

    /// Every directory that holds a link or the file, and their ancestors, that is not owned by root
    /// or is writable by group or others without the sticky bit (which stops non-owners from
    /// renaming or deleting root's entries, as in /tmp).
    static func directoryWarnings(_ chain: SymlinkChain) -> [ConfigDirectoryWarning] {
        var directories: Set<String> = []
        for entry in chain.entries {
            var components = entry.directory.split(separator: "/").map(String.init)
            while true {
                directories.insert("/" + components.joined(separator: "/"))
                if components.isEmpty { break }
                components.removeLast()
            }
        }
        return directories.sorted().compactMap { directory in
            var info = stat()
            guard stat(directory, &info) == 0 else { return nil }
            let mode = info.st_mode & 0o7777
            let writableByOthers = mode & 0o022 != 0 && mode & UInt32(S_ISVTX) == 0
            guard info.st_uid != 0 || writableByOthers else { return nil }
            return ConfigDirectoryWarning(directory: directory, ownerUID: info.st_uid, mode: mode)
        }
    }
}

/// "nobody (uid 65534)", or "uid 65534" when the account is unknown.
func ownerName(_ uid: UInt32) -> String {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
        return "uid \(uid)"
    }
    return "\(String(cString: name)) (uid \(uid))"
}

/// A mode as `ls`-style octal: 0644, 01777.
func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
#endif
