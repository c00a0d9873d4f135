#if os(Linux)
import FoundationEssentials
import Glibc
import SystemPackage

/// Another fwenforcerd holds the instance lock.
public struct InstanceAlreadyRunning: Error, Equatable, CustomStringConvertible {
    public var lockPath: String
    /// The holder's process id, as it wrote it into the lock file; nil if it could not be read.
    public var holderPID: Int32?

    public var description: String {
        let holder = holderPID.map { " (pid \($0))" } ?? ""
        return "another fwenforcerd is already running\(holder): it holds the lock \(lockPath); "
            + "stop it first, only one instance may manage the firewall on a host"
    }
}

/// Makes sure one fwenforcerd runs per host: an exclusive `flock` on a file under /run, held for as
/// long as the process lives (or until ``release()``).
///
/// The kernel drops the lock when the process dies, however it dies, so a stale lock file never
/// blocks a restart. The file holds the holder's pid, which a refused second instance reports.
public final class InstanceLock {
    /// Where the daemon keeps its lock: in its `RuntimeDirectory=`.
    public static let defaultPath: FilePath = "/run/fwenforcer/fwenforcerd.lock"

    public let path: FilePath
    private var fd: Int32

    private init(path: FilePath, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit {
        if fd != -1 { closeDescriptor(fd) }
    }

    /// Takes the lock at `path` without waiting, creating its directory (mode 0755) if needed.
    ///
    /// - Throws: ``InstanceAlreadyRunning`` when another process holds it, ``SystemCallError`` when the
    ///   file cannot be opened.
    ///
    /// The corresponding C function is `flock(fd, LOCK_EX | LOCK_NB)`.
    public static func acquire(at path: FilePath = defaultPath) throws -> InstanceLock {
        let pathString = path.string
        let directory = path.removingLastComponent().string
        if !directory.isEmpty, mkdir(directory, 0o755) == -1, errno != EEXIST {
            throw SystemCallError(call: "mkdir", subject: directory, code: Errno(rawValue: errno))
        }
        // No O_TRUNC: while the holder lives, the file must keep its pid for the next one to read.
        let fd = try retryingInterrupts("open", pathString) {
            open(pathString, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        }
        // The pid is written into the file: never into something else planted under its name (a
        // hard link to another file of root's, a device).
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & S_IFMT != S_IFREG || info.st_nlink != 1 {
            closeDescriptor(fd)
            throw SystemCallError(call: "open", subject: "\(pathString) (not a regular file of its own: \(info.st_nlink) links)", code: .notPermitted)
        }
        do {
            try retryingInterrupts("flock", pathString) { flock(fd, LOCK_EX | LOCK_NB) }
        } catch where error.code == .wouldBlock {
            let holder = readPID(fd)
            closeDescriptor(fd)
            throw InstanceAlreadyRunning(lockPath: pathString, holderPID: holder)
        } catch {
            closeDescriptor(fd)
            throw error
        }
        let lock = InstanceLock(path: path, fd: fd)
        try lock.recordPID()
        return lock
    }

    private func recordPID() throws(SystemCallError) {
        let text = Array("\(getpid())\n".utf8)
        try retryingInterrupts("ftruncate", path.string) { ftruncate(fd, 0) }
        let written = try retryingInterrupts("pwrite", path.string) {
            text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        if written != text.count {
            throw SystemCallError(call: "pwrite", subject: path.string, code: .noSpace)
        }
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
        return text.split(whereSeparator: \.isWhitespace).first.flatMap { Int32($0) }
    }

    /// The pid of the process holding the lock at `path`, without touching the lock: read from
    /// /proc/locks by the file's device and inode (even a brief LOCK_NB attempt could make a daemon
    /// starting at that instant think another one runs). Nil when nobody holds it.
    public static func holder(at path: FilePath = defaultPath) -> Int32? {
        var st = stat()
        guard stat(path.string, &st) == 0, let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" (device in hex, inode in decimal).
        let dev = UInt64(st.st_dev)
        let (major, minor) = (((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff), (dev & 0xff) | ((dev >> 12) & ~0xff))
        let device = String(cFormat: "%02llx:%02llx:%llu", major, minor, UInt64(st.st_ino))
        for line in locks.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == device, let pid = Int32(fields[4]) else { continue }
            return pid
        }
        return nil
    }

    /// Gives the lock up. The file stays: removing it could let a third process lock a new file while
    /// a second still waits on the old one.
    public func release() {
        guard fd != -1 else { return }
        closeDescriptor(fd)
        fd = -1
    }
}
#endif
