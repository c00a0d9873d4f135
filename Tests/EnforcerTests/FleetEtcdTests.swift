import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// Repository paths of the fleet integration examples in deploy/.
enum Fleet {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let etcdWatcher = repository.appendingPathComponent("deploy/etcd/fwenforcer-etcd-watch").path
    static let ansible = repository.appendingPathComponent("deploy/ansible")

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The first of `paths` that is executable: the tool is installed.
    static func tool(_ paths: String...) -> String? { paths.first { access($0, X_OK) == 0 } }
    static let etcd = tool("/usr/bin/etcd")
    static let etcdctl = tool("/usr/bin/etcdctl")
    static let ansiblePlaybook = tool("/usr/bin/ansible-playbook")

    /// Free TCP ports on loopback, as the kernel hands them out for port 0.
    static func freePorts(_ count: Int) throws -> [Int] {
        let r = try run(["python3", "-c", """
            import socket
            ss = [socket.socket() for _ in range(\(count))]
            for s in ss: s.bind(("127.0.0.1", 0))
            print(" ".join(str(s.getsockname()[1]) for s in ss))
            """])
        return r.stdout.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// A child process with its stderr (and stdout) in a log file; `stop()` sends SIGTERM, then
    /// SIGKILL after 5 s, and waits.
    final class Child {
        let process = Process()
        let log: URL
        init(_ argv: [String], log: URL, environment: [String: String] = [:]) throws {
            self.log = log
            if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            process.standardError = handle
            process.standardOutput = handle
            try process.run()
        }
        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        func stop(_ first: Int32 = SIGTERM) {
            if process.isRunning { kill(process.processIdentifier, first) }
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }
}

/// deploy/etcd: a real etcd on loopback holds the deployment's membership; the real
/// fwenforcer-etcd-watch renders the config; the real `fwenforcerd run` in a namespace enforces it.
@Suite(.serialized, .enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath),
                             "needs root, nft and the built fwenforcerd"),
       .enabled(if: Fleet.etcd != nil && Fleet.etcdctl != nil,
                "etcd or etcdctl is not installed (Debian packages etcd-server, etcd-client): the etcd watcher is not tested"))
struct FleetEtcdTests {
    /// One etcd member on 127.0.0.1 with a data directory of its own; it can be stopped and started
    /// again on the same ports and data.
    final class Etcd {
        let dir: URL
        let client: Int, peer: Int
        var child: Fleet.Child?
        var endpoint: String { "127.0.0.1:\(client)" }

        init(dir: URL) throws {
            self.dir = dir
            let ports = try Fleet.freePorts(2)
            try #require(ports.count == 2)
            (client, peer) = (ports[0], ports[1])
            try start()
        }

        func start() throws {
            child = try Fleet.Child([Fleet.etcd!, "--name", "fwe-test", "--data-dir", dir.appendingPathComponent("etcd-data").path,
                                     "--listen-client-urls", "http://\(endpoint)", "--advertise-client-urls", "http://\(endpoint)",
                                     "--listen-peer-urls", "http://127.0.0.1:\(peer)",
                                     "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
                                     "--initial-cluster", "fwe-test=http://127.0.0.1:\(peer)"],
                                    log: dir.appendingPathComponent("etcd.log"))
            let deadline = Date().addingTimeInterval(20)
            while try ctl(["endpoint", "health"]).status != 0 {
                guard Date() < deadline, child!.process.isRunning else {
                    throw Fleet.Failure("etcd did not become healthy: \(child!.logText.suffix(2000))")
                }
                usleep(100_000)
            }
        }

        /// Kills etcd outright (a crash, not a clean shutdown) and waits for it to be gone.
        func crash() { child?.stop(SIGKILL) }

        @discardableResult
        func ctl(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try run(["env", "ETCDCTL_API=3", Fleet.etcdctl!, "--endpoints=\(endpoint)", "--command-timeout=3s"] + args)
        }

        func put(_ key: String, _ value: String) throws {
            let r = try ctl(["put", key, value])
            try #require(r.status == 0, "etcdctl put \(key): \(r.stderr)")
        }
    }

    /// The elements of one of the namespace's sets, as `nft -j` lists them.
    func elements(_ ns: DaemonRunTests.Namespace, _ set: String) throws -> [String] {
        let r = try ns.exec(["nft", "-j", "list", "set", "inet", "fwenforcer", set])
        guard r.status == 0,
              let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let objects = json["nftables"] as? [[String: Any]] else { return [] }
        for object in objects {
            guard let s = object["set"] as? [String: Any] else { continue }
            return (s["elem"] as? [Any] ?? []).map { element in
                if let prefix = (element as? [String: Any])?["prefix"] as? [String: Any] {
                    return "\(prefix["addr"] ?? "")/\(prefix["len"] ?? "")"
                }
                if let range = (element as? [String: Any])?["range"] as? [Any], range.count == 2 {
                    return "\(range[0])-\(range[1])"
                }
                return "\(element)"
            }.sorted()
        }
        return []
    }

    static let shared = """
    [host]
    roles = "auto"
    catalog = "cloudcenter"
    version = "4.10"

    [enforce]
    ingress = "enforce"
    egress = "enforce"
    """

    @Test func membershipChangesInEtcdReachTheKernel() throws {
        let setup = try DaemonRunTests.Setup("etcd", config: nil)
        defer { setup.close() }
        let (ns, dir, config) = (setup.ns, setup.dir, setup.path)
        let wait = DaemonRunTests()
        let etcd = try Etcd(dir: dir)
        defer { etcd.crash() }

        // This VM is the CCO at 198.18.0.20: roles = "auto" resolves from the namespace's address.
        try run(["ip", "-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        try run(["ip", "-n", ns.name, "addr", "add", "198.18.0.20/24", "dev", "v0"])

        let prefix = "/fwenforcer/test"
        try etcd.put("\(prefix)/config", Self.shared)
        try etcd.put("\(prefix)/members/CCO/cco-1", "198.18.0.20")
        try etcd.put("\(prefix)/members/CCM_SA/ccm-1", "198.18.0.10 fd00:18::10")
        try etcd.put("\(prefix)/members/admin_ssh/ops", "198.19.0.0/24")
        // Someone else's deployment under a neighbouring prefix is not ours.
        try etcd.put("/fwenforcer/test2/members/AMQP/other", "198.18.9.9")

        let watcher = try Fleet.Child([Fleet.etcdWatcher, "--endpoints", etcd.endpoint, "--prefix", prefix,
                                       "--output", config.path, "--fwenforcerd", fwenforcerdPath, "--etcdctl", Fleet.etcdctl!,
                                       "--on-install", "echo installed >> '\(dir.path)/hook.log'"],
                                      log: dir.appendingPathComponent("watcher.log"))
        defer { watcher.stop() }
        // Rendered at start, before any change.
        #expect(eventually(10) { FileManager.default.fileExists(atPath: config.path) }, "\(watcher.logText)")
        let attributes = try FileManager.default.attributesOfItem(atPath: config.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let daemon = try setup.start()
        #expect(try eventually(5) { try elements(ns, "CCM_SA_v4") == ["198.18.0.10"] }, "\(daemon.logText)")
        #expect(try elements(ns, "CCM_SA_v6") == ["fd00:18::10"])
        #expect(try elements(ns, "AMQP_v4").isEmpty)

        // A new member: the set gains its address.
        try etcd.put("\(prefix)/members/AMQP/amqp-1", "198.18.0.30")
        #expect(try eventually(5) { try elements(ns, "AMQP_v4") == ["198.18.0.30"] }, "\(watcher.logText)\n\(daemon.logText)")

        // The member replaced (same name, new VM): one element out, one in.
        try etcd.put("\(prefix)/members/AMQP/amqp-1", "198.18.0.31")
        #expect(try eventually(5) { try elements(ns, "AMQP_v4") == ["198.18.0.31"] }, "\(watcher.logText)\n\(daemon.logText)")
        #expect(daemon.logText.contains("AMQP_v4 +1 -1, rules unchanged"), "\(daemon.logText)")

        // An invalid member is refused by the watcher's check: the installed file stays as it was.
        let before = try String(contentsOf: config, encoding: .utf8)
        try etcd.put("\(prefix)/members/AMQP/amqp-2", "198.18.0.300")
        #expect(eventually(5) { watcher.logText.contains("groups.AMQP: \"198.18.0.300\" is not an IPv4 or IPv6 address") }, "\(watcher.logText)")
        #expect(watcher.logText.contains("not installed"))
        #expect(try String(contentsOf: config, encoding: .utf8) == before)
        #expect(!daemon.logText.contains("198.18.0.300"), "the daemon saw the invalid render")
        // Fixing it installs the next version.
        try etcd.put("\(prefix)/members/AMQP/amqp-2", "198.18.0.40")
        #expect(try eventually(5) { try elements(ns, "AMQP_v4") == ["198.18.0.31", "198.18.0.40"] }, "\(watcher.logText)")

        // etcd crashes and comes back: the watcher resumes and later changes still arrive.
        etcd.crash()
        try etcd.start()
        try etcd.ctl(["del", "\(prefix)/members/AMQP/amqp-2"])
        #expect(try eventually(10) { try elements(ns, "AMQP_v4") == ["198.18.0.31"] }, "\(watcher.logText)\n\(etcd.child!.logText.suffix(1500))")

        // A member leaving entirely: the set empties, the rest stays.
        try etcd.ctl(["del", "\(prefix)/members/AMQP/amqp-1"])
        #expect(try eventually(5) { try elements(ns, "AMQP_v4").isEmpty }, "\(watcher.logText)")
        #expect(try elements(ns, "CCM_SA_v4") == ["198.18.0.10"])
        #expect(!(try String(contentsOf: config, encoding: .utf8)).contains("198.18.9.9"))
        // Six versions installed (start, added, replaced, fixed, two removals), the refused one not;
        // --on-install ran once for each.
        let installs = watcher.logText.components(separatedBy: "fwenforcer-etcd-watch: installed ").count - 1
        let hooks = ((try? String(contentsOf: dir.appendingPathComponent("hook.log"), encoding: .utf8)) ?? "").split(separator: "\n").count
        #expect(installs == 6 && hooks == installs, "\(installs) installs, \(hooks) hook runs: \(watcher.logText)")
        // No temporary file is left beside the config.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }.isEmpty)
    }

    /// Whoever may put a member key must not be able to change any other group: a member name that
    /// closes the array and adds `admin_ssh = ["0.0.0.0/0"]`, keys and values that are not UTF-8
    /// (they used to kill the watcher: a crash loop under Restart=always), a group that is not a
    /// catalog name. Each is skipped and logged; the installed file and the kernel's sets stay as
    /// they were, and the watcher goes on installing later changes.
    @Test func hostileMemberKeysChangeNoGroup() throws {
        let setup = try DaemonRunTests.Setup("etcdhostile", config: nil)
        defer { setup.close() }
        let (ns, dir, config) = (setup.ns, setup.dir, setup.path)
        let wait = DaemonRunTests()
        let etcd = try Etcd(dir: dir)
        defer { etcd.crash() }
        try run(["ip", "-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        try run(["ip", "-n", ns.name, "addr", "add", "198.18.0.20/24", "dev", "v0"])

        let prefix = "/fwenforcer/hostile"
        try etcd.put("\(prefix)/config", Self.shared)
        try etcd.put("\(prefix)/members/CCO/cco-1", "198.18.0.20")
        try etcd.put("\(prefix)/members/AMQP/amqp-1", "198.18.0.30")
        let watcher = try Fleet.Child([Fleet.etcdWatcher, "--endpoints", etcd.endpoint, "--prefix", prefix,
                                       "--output", config.path, "--fwenforcerd", fwenforcerdPath, "--etcdctl", Fleet.etcdctl!],
                                      log: dir.appendingPathComponent("watcher.log"))
        defer { watcher.stop() }
        #expect(eventually(10) { FileManager.default.fileExists(atPath: config.path) }, "\(watcher.logText)")
        let daemon = try setup.start()
        #expect(try eventually(5) { try elements(ns, "AMQP_v4") == ["198.18.0.30"] }, "\(daemon.logText)")
        let installed = try String(contentsOf: config, encoding: .utf8)
        let sets = try ["AMQP_v4", "CCO_v4", "admin_ssh_v4"].map { try elements(ns, $0) }

        // etcdctl takes the key and value as arguments: printf writes the bytes that are not UTF-8.
        let shell = "ETCDCTL_API=3 '\(Fleet.etcdctl!)' --endpoints=\(etcd.endpoint) put"
        let hostile: [(put: String, logged: String)] = [
            // The issue's key. "/" ends a member name, hence the escaped slash of the CIDR.
            ("\(shell) '\(prefix)/members/AMQP/amqp-2\n]\nadmin_ssh = [\"0.0.0.0\\u002F0\",  #' 198.18.0.31",
             "skipped \(prefix)/members/AMQP/amqp-2\\n]\\nadmin_ssh = [\"0.0.0.0\\u002F0\",  #: the member name holds a control or format character"),
            ("\(shell) \"$(printf '\(prefix)/members/AMQP/amqp-\\377')\" 198.18.0.32",
             "skipped key \(prefix)/members/AMQP/amqp-\\xff: not UTF-8"),
            ("\(shell) \(prefix)/members/AMQP/amqp-4 \"$(printf '198.18.0.33\\377')\"",
             "skipped \(prefix)/members/AMQP/amqp-4: its value is not UTF-8"),
            ("\(shell) '\(prefix)/members/admin_ssh = [\"0.0.0.0\\u002F0\"]\nAMQP/amqp-5' 198.18.0.34",
             "skipped \(prefix)/members/admin_ssh = [\"0.0.0.0\\u002F0\"]\\nAMQP/amqp-5: the group is not a catalog name"),
            ("\(shell) \"$(printf '\(prefix)/members/AMQP/amqp-6\\033[2J')\" 198.18.0.35",
             "skipped \(prefix)/members/AMQP/amqp-6\\u001b[2J: the member name holds a control or format character"),
        ]
        for (put, logged) in hostile {
            let r = try run(["sh", "-c", put])
            try #require(r.status == 0, "\(put): \(r.stderr)")
            #expect(eventually(5) { watcher.logText.contains(logged) }, "\(put)\n\(watcher.logText)")
            #expect(watcher.process.isRunning, "the watcher died on \(put): \(watcher.logText)")
            #expect(try String(contentsOf: config, encoding: .utf8) == installed, "\(put) changed the config")
            #expect(try ["AMQP_v4", "CCO_v4", "admin_ssh_v4"].map { try elements(ns, $0) } == sets, "\(put) changed a set")
        }
        #expect(watcher.logText.components(separatedBy: "fwenforcer-etcd-watch: installed ").count == 2,
                "installed again: \(watcher.logText)")
        // Still watching: an honest member arrives; the hostile ones still add nothing.
        try etcd.put("\(prefix)/members/AMQP/amqp-7", "198.18.0.40")
        #expect(try eventually(5) { try elements(ns, "AMQP_v4") == ["198.18.0.30", "198.18.0.40"] }, "\(watcher.logText)")
        #expect(try elements(ns, "admin_ssh_v4").isEmpty)
        let text = try String(contentsOf: config, encoding: .utf8)
        #expect(text == installed.replacingOccurrences(of: "    \"198.18.0.30\",  # amqp-1\n",
                                                       with: "    \"198.18.0.30\",  # amqp-1\n    \"198.18.0.40\",  # amqp-7\n"), "\(text)")
    }

    /// A shared part that is not a shared config (roles pinned) is refused with the key named,
    /// and `--once` reports it with its exit status.
    @Test func aSharedConfigThatPinsRolesIsRefused() throws {
        let dir = URL(fileURLWithPath: try DaemonTemporaryDirectory().path)
        defer { try? FileManager.default.removeItem(at: dir) }
        let etcd = try Etcd(dir: dir)
        defer { etcd.crash() }
        try etcd.put("/fwenforcer/pinned/config", Self.shared.replacingOccurrences(of: "roles = \"auto\"", with: "roles = [\"CCO\"]"))
        try etcd.put("/fwenforcer/pinned/members/CCO/cco-1", "198.18.0.20")
        let output = dir.appendingPathComponent("fwenforcer.conf")
        let r = try run([Fleet.etcdWatcher, "--once", "--endpoints", etcd.endpoint, "--prefix", "/fwenforcer/pinned",
                         "--output", output.path, "--fwenforcerd", fwenforcerdPath, "--etcdctl", Fleet.etcdctl!])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/fwenforcer/pinned/config: host.roles: must be \"auto\""), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output.path))

        // Fixed, --once renders and exits 0.
        try etcd.put("/fwenforcer/pinned/config", Self.shared)
        let fixed = try run([Fleet.etcdWatcher, "--once", "--endpoints", etcd.endpoint, "--prefix", "/fwenforcer/pinned",
                             "--output", output.path, "--fwenforcerd", fwenforcerdPath, "--etcdctl", Fleet.etcdctl!])
        #expect(fixed.status == 0, "\(fixed.stderr)")
        let check = try run([fwenforcerdPath, "check", "--config", output.path, "--host-address", "198.18.0.20"])
        #expect(check.status == 0 && check.stdout.contains("roles CCO"), "\(check.stdout)\(check.stderr)")
    }
}

/// deploy/etcd/fwenforcer-etcd-watch.service is accepted by systemd's own checker.
@Suite struct FleetEtcdUnitTests {
    /// The watcher's rendering as a function (Tests/Python/test_etcd_watch_render.py): every
    /// control character, undecodable bytes, group names, TOML quoting. The watcher's own python3.
    @Test(.enabled(if: Fleet.tool("/usr/bin/python3") != nil, "no /usr/bin/python3 (the watcher's interpreter)"))
    func renderingRefusesHostileNames() throws {
        let r = try run(["/usr/bin/python3", Fleet.repository.appendingPathComponent("Tests/Python/test_etcd_watch_render.py").path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("\nOK"), "\(r.stderr)")
    }

    @Test(.enabled(if: DaemonServiceUnitTests.systemdAnalyze != nil,
                   "systemd-analyze is not installed (Debian package systemd): the watcher's unit is not verified"))
    func watcherUnitPassesSystemdAnalyzeVerify() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        // verify checks that ExecStart's program and the EnvironmentFile exist: point them at copies.
        let unit = try String(contentsOfFile: Fleet.repository.appendingPathComponent("deploy/etcd/fwenforcer-etcd-watch.service").path,
                              encoding: .utf8)
            .replacingOccurrences(of: "ExecStart=/usr/local/sbin/fwenforcer-etcd-watch", with: "ExecStart=\(Fleet.etcdWatcher)")
            .replacingOccurrences(of: "EnvironmentFile=/etc/default/fwenforcer-etcd-watch",
                                  with: "EnvironmentFile=\(Fleet.repository.appendingPathComponent("deploy/etcd/fwenforcer-etcd-watch.default").path)")
        #expect(unit.contains("ExecStart=\(Fleet.etcdWatcher)") && unit.contains("EnvironmentFile=\(Fleet.repository.path)"))
        try unit.write(toFile: dir("fwenforcer-etcd-watch.service"), atomically: true, encoding: .utf8)
        let result = try run([DaemonServiceUnitTests.systemdAnalyze!, "verify", dir("fwenforcer-etcd-watch.service")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }
}
