import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process measured from spawn to exit: wall time, CPU time and peak resident memory.
///
/// Children are spawned with `posix_spawn` from the calling thread, so they inherit its network
/// namespace: `nft` runs in the benchmark's namespace without `ip netns exec` (whose own cost
/// would be charged to nft). Peak RSS comes from GNU time (`%M`), not from our own `wait4`:
/// glibc's posix_spawn shares our address space until exec (CLONE_VM|CLONE_VFORK), and exec
/// records the shared (our) high-water mark as the child's `ru_maxrss`, so every child would look
/// as large as the benchmark. time(1) forks a copy of its own small address space instead.
struct Child {
    let pid: pid_t
    let started: ContinuousClock.Instant
    let stderrPath: String
    /// Where time(1) writes the peak RSS (KiB), when measured.
    var rssPath: String?

    struct Exit {
        var status: Int32
        var wall: Double
        /// User + system CPU seconds (from wait4: the child and the children it waited for).
        var cpu: Double
        /// Peak resident set size in bytes (0 when not measured).
        var maxRSS: Int
        var stderr: String
    }

    /// Spawns `argv` with stdout going to `stdout` (a path; /dev/null by default).
    static func spawn(_ argv: [String], stdout: String = "/dev/null", environment: [String: String] = [:],
                      measureRSS: Bool = false) throws -> Child {
        let stderrPath = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-bench-\(getpid())-\(UUID().uuidString).err").path
        let rssPath = measureRSS ? stderrPath + ".rss" : nil
        let argv = rssPath.map { ["/usr/bin/time", "-f", "%M", "-o", $0] + argv } ?? argv
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var pid: pid_t = 0
        let started = ContinuousClock.now
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        return Child(pid: pid, started: started, stderrPath: stderrPath, rssPath: rssPath)
    }

    /// Waits for the child to exit.
    func wait() throws -> Exit {
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("wait4(\(pid)): \(String(cString: strerror(errno)))") }
        }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        let wall = ContinuousClock.now - started
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        unlink(stderrPath)
        var maxRSS = 0
        if let rssPath {
            // The last line is %M; time(1) puts "Command exited with non-zero status" before it.
            let text = (try? String(contentsOfFile: rssPath, encoding: .utf8)) ?? ""
            maxRSS = (Int(text.split(separator: "\n").last ?? "") ?? 0) * 1024
            unlink(rssPath)
        }
        // WIFEXITED / WEXITSTATUS are macros Swift does not import.
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Exit(status: code, wall: wall.seconds, cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
                    maxRSS: maxRSS, stderr: stderr)
    }

    /// Runs `argv` to completion; a non-zero exit is an error carrying the child's stderr.
    static func run(_ argv: [String], stdout: String = "/dev/null", measureRSS: Bool = false) throws -> Exit {
        let exit = try spawn(argv, stdout: stdout, measureRSS: measureRSS).wait()
        guard exit.status == 0 else {
            throw BenchError("\(argv.joined(separator: " ")) exited with \(exit.status): \(exit.stderr.prefix(2000))")
        }
        return exit
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Wall time of `body` in seconds.
func timed(_ body: () throws -> Void) rethrows -> Double {
    let t0 = ContinuousClock.now
    try body()
    return (ContinuousClock.now - t0).seconds
}
