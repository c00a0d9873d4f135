#if os(Linux)
import Glibc
import SystemPackage

/// `posix_spawn` as every helper fwenforcerd starts needs it (`ChildProcess`, `DetachedProcess`):
/// the child's signal mask and the signals reset to their defaults set from its first
/// instruction, its descriptors 0-2 as the caller arranges them, and nothing else of this process
/// (the netlink socket libmnl opened has no close-on-exec flag).
enum Spawn {
    /// `POSIX_SPAWN_SETSID` (glibc 2.26): the child starts a new session. Not exported by Swift's
    /// Glibc module.
    static let setSession: Int16 = 0x80

    typealias FileActions = (inout posix_spawn_file_actions_t) throws(SystemCallError) -> Void

    /// Starts `executable` (a path: no PATH search) with `arguments` and this process's
    /// environment; returns its pid. `standardStreams` adds the file actions for 0-2.
    static func start(_ executable: String, _ arguments: [String], blocked: [Int32], resetToDefault: [Int32],
                      newSession: Bool = false, standardStreams: FileActions) throws(SystemCallError) -> pid_t {
        var attributes = posix_spawnattr_t()
        var actions = posix_spawn_file_actions_t()
        try check("posix_spawnattr_init", posix_spawnattr_init(&attributes))
        defer { posix_spawnattr_destroy(&attributes) }
        try check("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions))
        defer { posix_spawn_file_actions_destroy(&actions) }

        var mask = sigset_t(), defaults = sigset_t()
        sigemptyset(&mask)
        sigemptyset(&defaults)
        for s in blocked { sigaddset(&mask, s) }
        for s in resetToDefault { sigaddset(&defaults, s) }
        try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attributes, &mask))
        try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attributes, &defaults))
        let flags = Int16(POSIX_SPAWN_SETSIGMASK) | Int16(POSIX_SPAWN_SETSIGDEF) | (newSession ? setSession : 0)
        try check("posix_spawnattr_setflags", posix_spawnattr_setflags(&attributes, flags))

        try standardStreams(&actions)
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

    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34), looked up at run time like the
    /// other GNU functions Swift's Glibc module hides; nil on an older glibc.
    static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }

    /// posix_spawn* return the error number instead of setting errno.
    static func check(_ call: String, _ result: Int32) throws(SystemCallError) {
        if result != 0 { throw SystemCallError(call: call, code: Errno(rawValue: result)) }
    }
}
#endif
