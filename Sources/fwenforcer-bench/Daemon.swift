import Enforcer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The real `fwenforcerd run` in the benchmark's namespace, with its config, state and lock files
/// in a scratch directory, and a notify socket of our own so READY=1 says when the first plan is
/// enforced.
final class DaemonUnderTest {
    let pid: pid_t
    let configPath: String
    private let child: Child
    private let notifySocket: Int32
    let startedToReady: Double

    init(binary: String, directory: String, config: String) throws {
        configPath = directory + "/fwenforcer.conf"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let notifyPath = directory + "/notify.sock"
        unlink(notifyPath)
        let notifySocket = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.notifySocket = notifySocket
        guard notifySocket >= 0 else { throw BenchError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in notifyPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(notifySocket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw BenchError("bind \(notifyPath): \(String(cString: strerror(errno)))") }
        // setpriv --pdeathsig: the daemon dies with the benchmark, even on SIGKILL.
        let child = try Child.spawn(["setpriv", "--pdeathsig", "KILL", "--", binary, "run", "--config", configPath,
                                 "--allow-insecure-config", "--state-file", directory + "/state.json",
                                 "--lock-file", directory + "/fwenforcerd.lock", "--pending-file", directory + "/pending.json"],
                                stdout: directory + "/daemon.log", environment: ["NOTIFY_SOCKET": notifyPath])
        self.child = child
        pid = child.pid
        runningDaemon = child.pid
        guard try Self.waitForNotify("READY=1", socket: notifySocket, pid: child.pid, timeout: 120) else {
            kill(child.pid, SIGKILL)
            let exit = try child.wait()
            throw BenchError("fwenforcerd run did not become ready: \(exit.stderr.suffix(2000))")
        }
        startedToReady = (ContinuousClock.now - child.started).seconds
    }

    private static func waitForNotify(_ word: String, socket notifySocket: Int32, pid: pid_t, timeout: Double) throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var fds = pollfd(fd: notifySocket, events: Int16(POLLIN), revents: 0)
            guard poll(&fds, 1, 200) > 0 else {
                if kill(pid, 0) != 0 { return false }
                continue
            }
            let n = recv(notifySocket, &buffer, buffer.count, 0)
            if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").contains(Substring(word)) { return true }
        }
        return false
    }

    /// Rewrites the config as editors and config management do: a temporary file, then rename.
    func rewriteConfig(_ text: String) throws {
        let tmp = configPath + ".tmp"
        try text.write(toFile: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp, configPath) == 0 else { throw BenchError("rename: \(String(cString: strerror(errno)))") }
    }

    /// Resident and peak resident memory (VmRSS, VmHWM), in bytes.
    func memory() -> (rss: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func kib(_ key: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return (kib("VmRSS"), kib("VmHWM"))
    }

    /// CPU seconds (user + system, every thread) and context switches (voluntary + involuntary,
    /// summed over threads: each is one wakeup or preemption).
    func cpuAndSwitches() -> (cpu: Double, switches: Int, threads: Int) {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let cpu = fields.count > 13 ? (Double(fields[11]) ?? 0) / ticks + (Double(fields[12]) ?? 0) / ticks : 0
        var switches = 0, threads = 0
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
            threads += 1
            let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)) ?? ""
            for line in status.split(separator: "\n") where line.contains("ctxt_switches:") {
                switches += Int(line.split(separator: "\t").last ?? "0") ?? 0
            }
        }
        return (cpu, switches, threads)
    }

    /// SIGTERM (the table stays, as in production), then reap.
    func stop() throws {
        kill(pid, SIGTERM)
        let exit = try child.wait()
        runningDaemon = 0
        close(notifySocket)
        guard exit.status == 0 else { throw BenchError("fwenforcerd run exited with \(exit.status): \(exit.stderr.suffix(2000))") }
    }
}
