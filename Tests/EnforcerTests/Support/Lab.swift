import Foundation
#if canImport(Glibc)
import Glibc
#endif

// A lab of "VMs" for end-to-end tests: one network namespace per VM, all attached by veth pairs to
// one Linux bridge that lives in a namespace of its own, so every VM is on one L2 segment. Nothing
// here touches the namespace the tests run in: every address, route and nftables table is inside
// a namespace the lab created, named `fwe-lab-<pid>-<n>-<vm>`, and deleted by `teardown()`, by the
// SIGINT/SIGTERM handler, or (after a crash) by the next run's `Lab.removeStale()`.

/// The finished run of a command.
struct LabCommandResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
    var ok: Bool { status == 0 && !timedOut }
    /// For error messages: the status and whatever the command said.
    var summary: String {
        (timedOut ? "timed out" : "exit \(status)") + (stderr.isEmpty ? "" : ": " + stderr.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs programs with a deadline. Output goes to files rather than pipes, so no reader threads are
/// needed and a chatty child can never block on a full pipe.
///
/// Every child starts through `env --default-signal`: the test process's threads block SIGTERM
/// and SIGINT and the Swift runtime ignores SIGPIPE, and a child inherits both through exec; a
/// daemon that cannot see SIGTERM could not be stopped gracefully.
enum LabCommand {
    /// Scratch files of one command, removed when it returns.
    static func scratchFile(_ tag: String, _ ext: String) -> URL {
        URL(fileURLWithPath: "/tmp/\(Lab.prefix)\(getpid())-cmd-\(tag).\(ext)")
    }

    /// Runs `argv` (`argv[0]` looked up in PATH), feeding `input` on stdin; after `timeout` seconds
    /// it is killed and the result says so.
    static func run(_ argv: [String], input: Data? = nil, timeout: TimeInterval = 60) throws -> LabCommandResult {
        let tag = UUID().uuidString
        let outURL = scratchFile(tag, "out"), errURL = scratchFile(tag, "err"), inURL = scratchFile(tag, "in")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: inURL.path, contents: input ?? Data())
        defer { for u in [outURL, errURL, inURL] { try? FileManager.default.removeItem(at: u) } }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let inp = try FileHandle(forReadingFrom: inURL)
        defer { try? out.close(); try? err.close(); try? inp.close() }

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["--default-signal"] + argv
        p.standardInput = inp
        p.standardOutput = out
        p.standardError = err
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        try p.run()
        var timedOut = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(p.processIdentifier, SIGKILL)
            done.wait()
        }
        return LabCommandResult(status: p.terminationStatus,
                             stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
                             timedOut: timedOut)
    }

    /// `run`, throwing when the command fails.
    @discardableResult
    static func check(_ argv: [String], input: Data? = nil, timeout: TimeInterval = 60) throws -> LabCommandResult {
        let r = try run(argv, input: input, timeout: timeout)
        guard r.ok else { throw LabError("\(argv.joined(separator: " ")): \(r.summary)") }
        return r
    }
}

/// Runs `body` on every item with up to `width` threads (the work is waiting on child processes,
/// so more threads than cores is right). Results keep the items' order; the first error is thrown.
func parallelMap<T: Sendable, R: Sendable>(_ items: [T], width: Int = 24,
                                           _ body: @escaping @Sendable (T) throws -> R) throws -> [R] {
    let state = ParallelState<R>(items.count)
    let threads = min(width, items.count)
    let finished = DispatchSemaphore(value: 0)
    for _ in 0..<threads {
        let t = Thread {
            while true {
                state.lock.lock()
                let i = state.next
                state.next += 1
                state.lock.unlock()
                guard i < items.count else { break }
                let r = Result { try body(items[i]) }
                state.lock.lock()
                state.results[i] = r
                state.lock.unlock()
            }
            finished.signal()
        }
        t.stackSize = 1 << 20
        t.start()
    }
    for _ in 0..<threads { finished.wait() }
    return try state.results.map { try $0!.get() }
}

private final class ParallelState<R>: @unchecked Sendable {
    let lock = NSLock()
    var next = 0
    var results: [Result<R, Error>?]
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
}

/// A process the lab started in the background in one VM. Its output goes to a log file in the
/// lab's directory; its stdin is a pipe the lab holds open, so a child that exits on EOF (the
/// probe listener does) also goes away if the test process dies.
final class BackgroundProcess: @unchecked Sendable {
    let label: String
    let logURL: URL
    let pid: Int32
    private let stdin: Pipe
    private let exitFlag: ExitFlag

    private final class ExitFlag: @unchecked Sendable {
        let lock = NSLock()
        let sema = DispatchSemaphore(value: 0)
        var exited = false
        func set() { lock.lock(); exited = true; lock.unlock(); sema.signal() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return exited }
    }

    fileprivate init(label: String, argv: [String], logURL: URL) throws {
        self.label = label
        self.logURL = logURL
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["--default-signal"] + argv
        let pipe = Pipe()
        process.standardInput = pipe
        process.standardOutput = log
        process.standardError = log
        let flag = ExitFlag()
        process.terminationHandler = { _ in flag.set() }
        try process.run()
        stdin = pipe
        exitFlag = flag
        pid = process.processIdentifier
    }

    var isRunning: Bool { !exitFlag.isSet }

    /// The log so far.
    var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits until the log has a line for which `predicate` holds; false on timeout or exit.
    func waitForLine(timeout: TimeInterval, _ predicate: (Substring) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.split(separator: "\n").contains(where: predicate) { return true }
            if !isRunning { return output.split(separator: "\n").contains(where: predicate) }
            usleep(20_000)
        }
        return false
    }

    /// Closes stdin, then SIGTERM, then SIGKILL after `grace` seconds; returns when it has exited.
    func stop(grace: TimeInterval = 2) {
        try? stdin.fileHandleForWriting.close()
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if exitFlag.sema.wait(timeout: .now() + grace) == .timedOut {
            kill(pid, SIGKILL)
            exitFlag.sema.wait()
        }
        exitFlag.sema.signal() // leave it signalled for a later stop()
    }
}

/// What a lab VM is made of: a name (short, used in namespace names) and its addresses.
struct LabVMSpec: Sendable {
    var name: String
    var addresses: [String]
}

final class Lab: @unchecked Sendable {
    /// Every namespace, directory and process of a lab run is named with this prefix and the pid.
    static let prefix = "fwe-lab-"
    /// One L2 segment: these prefixes make all of the test ranges on-link.
    static let v4PrefixLength = 15   // 198.18.0.0/15
    static let v6PrefixLength = 8    // fd00::/8

    let id: String
    let dir: URL
    let bridgeNS: String
    private(set) var vmNames: [String] = []
    private let lock = NSLock()
    private let teardownLock = NSLock()
    private var background: [BackgroundProcess] = []
    private var tornDown = false

    /// Builds the bridge and the VMs. On failure everything made so far is removed again.
    init(label: String, vms: [LabVMSpec]) throws {
        Lab.installSignalCleanup()
        Lab.removeStaleOnce()
        id = "\(Lab.prefix)\(getpid())-\(Lab.nextSerial())"
        dir = URL(fileURLWithPath: "/tmp/\(id)")
        bridgeNS = "\(id)-br"
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        vmNames = vms.map(\.name)
        Lab.register(self)
        do {
            try build(vms)
        } catch {
            teardown()
            throw error
        }
    }

    /// The namespace of a VM.
    func ns(_ vm: String) -> String { "\(id)-\(vm)" }

    private func build(_ vms: [LabVMSpec]) throws {
        // All namespaces in one `ip` process.
        let names = [bridgeNS] + vms.map { ns($0.name) }
        try ipBatch(nil, names.map { "netns add \($0)" })
        // The bridge, and one veth pair per VM whose other end is created directly in the VM's
        // namespace as eth0. Multicast snooping off: the bridge must not filter neighbour discovery.
        var lines = ["link set lo up", "link add br0 type bridge mcast_snooping 0", "link set br0 up"]
        for (i, vm) in vms.enumerated() {
            lines += ["link add p\(i) type veth peer name eth0 netns \(ns(vm.name))",
                      "link set p\(i) master br0", "link set p\(i) up"]
        }
        try ipBatch(bridgeNS, lines)
        _ = try parallelMap(vms) { vm in
            try self.ipBatch(self.ns(vm.name), ["link set lo up", "link set eth0 up"] + vm.addresses.map { Lab.addressLine("add", $0) })
        }
    }

    /// `addr add|del` with the lab's on-link prefix; IPv6 without duplicate address detection.
    static func addressLine(_ verb: String, _ address: String) -> String {
        address.contains(":") ? "addr \(verb) \(address)/\(v6PrefixLength) dev eth0 nodad"
                              : "addr \(verb) \(address)/\(v4PrefixLength) dev eth0"
    }

    /// Runs `ip -batch` lines, in namespace `netns` (nil: the caller's namespace, used only for
    /// `netns add|del`, which change nothing but /run/netns).
    func ipBatch(_ netns: String?, _ lines: [String], force: Bool = false) throws {
        var argv = ["ip"]
        if let netns { argv += ["-n", netns] }
        if force { argv.append("-force") }
        argv += ["-batch", "-"]
        try LabCommand.check(argv, input: Data((lines.joined(separator: "\n") + "\n").utf8), timeout: 30)
    }

    // MARK: - using the VMs

    /// Runs a command inside a VM's network namespace (only the network namespace: nsenter, not
    /// `ip netns exec`, which also makes a mount namespace per call).
    func exec(_ vm: String, _ argv: [String], input: Data? = nil, timeout: TimeInterval = 60) throws -> LabCommandResult {
        try LabCommand.run(["nsenter", "--net=/run/netns/\(ns(vm))", "--"] + argv, input: input, timeout: timeout)
    }

    /// `exec`, throwing when the command fails.
    @discardableResult
    func check(_ vm: String, _ argv: [String], input: Data? = nil, timeout: TimeInterval = 60) throws -> LabCommandResult {
        let r = try exec(vm, argv, input: input, timeout: timeout)
        guard r.ok else { throw LabError("\(vm): \(argv.joined(separator: " ")): \(r.summary)") }
        return r
    }

    /// Starts a tracked background process in a VM; `teardown()` stops it if nobody did before.
    func spawn(_ vm: String, _ argv: [String], label: String) throws -> BackgroundProcess {
        let safe = label.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        let p = try BackgroundProcess(label: label,
                                      argv: ["nsenter", "--net=/run/netns/\(ns(vm))", "--"] + argv,
                                      logURL: dir.appendingPathComponent("\(vm).\(String(safe)).\(UUID().uuidString.prefix(8)).log"))
        lock.lock(); background.append(p); lock.unlock()
        return p
    }

    func addAddress(_ vm: String, _ address: String) throws { try ipBatch(ns(vm), [Lab.addressLine("add", address)]) }
    func removeAddress(_ vm: String, _ address: String) throws { try ipBatch(ns(vm), [Lab.addressLine("del", address)]) }

    /// Forgets the neighbour (ARP/ND) entries for `addresses` in every VM, as a gratuitous ARP /
    /// unsolicited NA would after an address moves to another VM.
    func forgetNeighbours(_ addresses: [String]) throws {
        _ = try parallelMap(vmNames) { vm in
            try self.ipBatch(self.ns(vm), addresses.map { "neigh flush to \($0)" }, force: true)
        }
    }

    // MARK: - teardown

    /// Stops every background process, deletes every namespace and the lab directory. Idempotent;
    /// safe to call from a signal handler's queue.
    func teardown() {
        // A second caller (the test's defer while the signal handler tears down, or the other way
        // round) waits for the first to finish, so "torn down" always means gone.
        teardownLock.lock()
        defer { teardownLock.unlock() }
        lock.lock()
        if tornDown { lock.unlock(); return }
        tornDown = true
        let procs = background
        lock.unlock()
        _ = try? parallelMap(procs) { $0.stop() }
        let names = [bridgeNS] + vmNames.map(ns)
        // Anything still inside a namespace (a process we did not start through spawn) would keep it alive.
        for n in names { Lab.killProcesses(inNetns: n) }
        _ = try? LabCommand.run(["ip", "-force", "-batch", "-"],
                             input: Data(names.map { "netns del \($0)" }.joined(separator: "\n").utf8 + [10]), timeout: 30)
        if ProcessInfo.processInfo.environment["FWE_E2E_KEEP_LOGS"] == nil {
            try? FileManager.default.removeItem(at: dir)
        }
        Lab.unregister(self)
    }

    /// Namespaces this process's labs still hold (for the "nothing left behind" check).
    static func ownNamespaces() -> [String] {
        listNamespaces().filter { $0.hasPrefix("\(prefix)\(getpid())-") }
    }

    static func listNamespaces() -> [String] {
        guard let r = try? LabCommand.run(["ip", "netns", "list"], timeout: 10), r.ok else { return [] }
        return r.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    static func killProcesses(inNetns name: String) {
        guard let r = try? LabCommand.run(["ip", "netns", "pids", name], timeout: 10), r.ok else { return }
        for pid in r.stdout.split(separator: "\n").compactMap({ Int32($0) }) where pid != getpid() {
            kill(pid, SIGKILL)
        }
    }

    /// Removes what crashed earlier runs left: `fwe-lab-<pid>-…` namespaces (and the processes in
    /// them) and `/tmp/fwe-lab-<pid>-…` directories whose test process is gone.
    static func removeStale() {
        func owner(_ name: String) -> Int32? {
            guard name.hasPrefix(prefix) else { return nil }
            return Int32(name.dropFirst(prefix.count).prefix { $0.isNumber })
        }
        func alive(_ pid: Int32) -> Bool {
            if pid == getpid() { return true }
            guard kill(pid, 0) == 0 || errno == EPERM else { return false }
            // A reused pid of an unrelated program does not protect the namespaces.
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmdline.contains("fwenforcer") || cmdline.contains("xctest")
        }
        let stale = listNamespaces().filter { owner($0).map { !alive($0) } ?? false }
        for n in stale { killProcesses(inNetns: n) }
        if !stale.isEmpty {
            _ = try? LabCommand.run(["ip", "-force", "-batch", "-"],
                                 input: Data(stale.map { "netns del \($0)" }.joined(separator: "\n").utf8 + [10]), timeout: 30)
            print("lab: removed \(stale.count) stale namespaces of earlier runs: \(stale.joined(separator: " "))")
        }
        let tmp = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for d in tmp where owner(d).map({ !alive($0) }) ?? false {
            try? FileManager.default.removeItem(atPath: "/tmp/\(d)")
        }
    }

    // MARK: - process-wide bookkeeping

    private final class Registry: @unchecked Sendable {
        let lock = NSLock()
        var labs: [ObjectIdentifier: Lab] = [:]
        var serial = 0
        var staleRemoved = false
        var signalsInstalled = false
    }
    private static let registry = Registry()

    private static func nextSerial() -> Int {
        registry.lock.lock(); defer { registry.lock.unlock() }
        registry.serial += 1
        return registry.serial
    }
    private static func register(_ lab: Lab) {
        registry.lock.lock(); registry.labs[ObjectIdentifier(lab)] = lab; registry.lock.unlock()
    }
    private static func unregister(_ lab: Lab) {
        registry.lock.lock(); registry.labs[ObjectIdentifier(lab)] = nil; registry.lock.unlock()
    }
    private static func removeStaleOnce() {
        registry.lock.lock()
        let first = !registry.staleRemoved
        registry.staleRemoved = true
        registry.lock.unlock()
        if first { removeStale() }
    }

    /// On SIGINT/SIGTERM (CI timeout, Ctrl-C), tear down every live lab before exiting. The
    /// handler only writes the signal number to a pipe (async-signal-safe); a thread reading the
    /// pipe does the teardown. A real handler rather than SIG_IGN, because ignored signals stay
    /// ignored in every child the lab starts, and the lab stops its children with SIGTERM.
    private static func installSignalCleanup() {
        registry.lock.lock(); defer { registry.lock.unlock() }
        guard !registry.signalsInstalled else { return }
        registry.signalsInstalled = true
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        signalWriteFD = fds[1]
        let readFD = fds[0]
        let t = Thread {
            var sig: UInt8 = 0
            while read(readFD, &sig, 1) != 1 {}
            registry.lock.lock()
            let labs = Array(registry.labs.values)
            registry.lock.unlock()
            for lab in labs { lab.teardown() }
            // Scratch files of commands that were still running.
            let mine = "\(prefix)\(getpid())-"
            for f in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where f.hasPrefix(mine) {
                try? FileManager.default.removeItem(atPath: "/tmp/\(f)")
            }
            exit(128 + Int32(sig))
        }
        t.start()
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                var b = UInt8(truncatingIfNeeded: s)
                _ = write(Lab.signalWriteFD, &b, 1)
            }
        }
    }
    nonisolated(unsafe) private static var signalWriteFD: Int32 = -1
}
