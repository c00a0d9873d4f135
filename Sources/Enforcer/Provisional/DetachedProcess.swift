#if os(Linux)
import Glibc
import SystemPackage

/// Starts a process that outlives its parent and the parent's terminal: what a provisional apply
/// over SSH needs, since the SSH session dying is exactly the failure it protects against.
public enum DetachedProcess {
    /// `POSIX_SPAWN_SETSID` (glibc 2.26): the child starts a new session, so the hang-up of the
    /// operator's terminal (SIGHUP to its session) does not reach it. Not exported by Swift's Glibc module.
    static let spawnSetsid: Int16 = 0x80

    /// Spawns `executable` with `arguments` in a new session, stdin and stdout on /dev/null, stderr
    /// appended to `standardError` (never through a symlink: the spawner is root), and `blocked` signals blocked from its first instruction (so a
    /// signal sent before it sets up its signalfd waits instead of killing it). Descriptors of this
    /// process other than 0-2 are closed in the child. Returns the child's pid; nobody waits for it
    /// (it is re-parented to init when this process exits).
    ///
    /// The corresponding C function is `posix_spawn`.
    public static func spawn(_ executable: String, arguments: [String], standardError: FilePath,
                             blocked: [Int32]) throws(SystemCallError) -> pid_t {
        var attributes = posix_spawnattr_t()
        var actions = posix_spawn_file_actions_t()
        try check("posix_spawnattr_init", posix_spawnattr_init(&attributes))
        defer { posix_spawnattr_destroy(&attributes) }
        try check("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions))
        defer { posix_spawn_file_actions_destroy(&actions) }

        var mask = sigset_t()
        sigemptyset(&mask)
        for s in blocked { sigaddset(&mask, s) }
        // Signals this process ignores stay ignored in the child unless reset: SIGPIPE is the child's
        // own choice, the rest take their defaults.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attributes, &mask))
        try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attributes, &defaults))
        let flags = Int16(POSIX_SPAWN_SETSIGMASK) | Int16(POSIX_SPAWN_SETSIGDEF) | spawnSetsid
        try check("posix_spawnattr_setflags", posix_spawnattr_setflags(&attributes, flags))

        try check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0))
        try check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0))
        try check("posix_spawn_file_actions_addopen",
                  posix_spawn_file_actions_addopen(&actions, 2, standardError.string, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o640))
        // The netlink socket libmnl opened has no close-on-exec flag; nothing but 0-2 is the child's business.
        if let closeFrom = addCloseFrom {
            try check("posix_spawn_file_actions_addclosefrom_np", closeFrom(&actions, 3))
        }

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { for p in argv { free(p) } }
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv + [nil]
        var pid: pid_t = 0
        try check("posix_spawn \(executable)", posix_spawn(&pid, executable, &actions, &attributes, &cArguments, environ))
        return pid
    }

    /// This program's own executable, for re-running it as a helper.
    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34), looked up at run time like the
    /// other GNU functions Swift's Glibc module hides; nil on an older glibc.
    static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }

    /// posix_spawn* return the error number instead of setting errno.
    private static func check(_ call: String, _ result: Int32) throws(SystemCallError) {
        if result != 0 { throw SystemCallError(call: call, code: Errno(rawValue: result)) }
    }
}
#endif
