#if os(Linux)
import Glibc
import SystemPackage

/// Starts a process that outlives its parent and the parent's terminal: what a provisional apply
/// over SSH needs, since the SSH session dying is exactly the failure it protects against.
public enum DetachedProcess {
    /// Spawns `executable` with `arguments` in a new session, stdin and stdout on /dev/null, stderr
    /// appended to `standardError` (never through a symlink: the spawner is root), and `blocked` signals blocked from its first instruction (so a
    /// signal sent before it sets up its signalfd waits instead of killing it). Descriptors of this
    /// process other than 0-2 are closed in the child. Returns the child's pid; nobody waits for it
    /// (it is re-parented to init when this process exits).
    ///
    /// The corresponding C function is `posix_spawn`.
    public static func spawn(_ executable: String, arguments: [String], standardError: FilePath,
                             blocked: [Int32]) throws(SystemCallError) -> pid_t {
        // Signals this process ignores stay ignored in the child unless reset: SIGPIPE is the child's
        // own choice, the rest take their defaults.
        try Spawn.start(executable, arguments, blocked: blocked, resetToDefault: [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2],
                        newSession: true) { (actions: inout posix_spawn_file_actions_t) throws(SystemCallError) in
            try Spawn.check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0))
            try Spawn.check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0))
            try Spawn.check("posix_spawn_file_actions_addopen",
                            posix_spawn_file_actions_addopen(&actions, 2, standardError.string, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o640))
        }
    }

    /// This program's own executable, for re-running it as a helper.
    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
#endif
