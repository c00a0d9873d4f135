import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

// Network namespaces for tests that program netfilter. Every kernel test works inside a namespace
// it made (`fwe-nl-<pid>-<n>`) and deletes, even when the test fails; the root namespace's firewall
// is never touched. A namespace left behind by a crashed run is removed by the next run.

/// True when kernel tests can run: root, `ip` and `nft` present.
let kernelTestsAvailable: Bool = canUseNetns && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
let kernelTestsSkipReason: Comment = "kernel tests need root, ip(8) and nft(8) to make and program a network namespace"

/// A named network namespace made for one test.
final class NetworkNamespace: @unchecked Sendable {
    static let prefix = "fwe-nl-"
    nonisolated(unsafe) private static var counter = 0
    private static let lock = NSLock()

    let name: String
    private var deleted = false

    /// Makes a fresh namespace with `lo` up (so packets can be sent inside it).
    init() throws {
        NetworkNamespace.removeStale()
        let n = NetworkNamespace.lock.withLock { () -> Int in NetworkNamespace.counter += 1; return NetworkNamespace.counter }
        name = "\(NetworkNamespace.prefix)\(getpid())-\(n)"
        let r = try run(["ip", "netns", "add", name])
        guard r.status == 0 else { throw NamespaceError("ip netns add \(name): \(r.stderr)") }
        _ = try? run(["ip", "-n", name, "link", "set", "lo", "up"])
    }

    deinit { delete() }

    /// Deletes the namespace (and with it every table in it). Safe to call twice.
    func delete() {
        guard !deleted else { return }
        deleted = true
        _ = try? run(["ip", "netns", "del", name])
    }

    /// Makes a namespace, runs `body` with it, and deletes it whatever happens.
    static func with<T>(_ body: (NetworkNamespace) throws -> T) throws -> T {
        let ns = try NetworkNamespace()
        defer { ns.delete() }
        return try body(ns)
    }

    /// Runs `body` with this thread inside the namespace, then moves the thread back. A netlink
    /// socket belongs to the namespace it was created in, so a backend created here keeps working
    /// in the namespace from any thread afterwards. `body` must not suspend.
    func entered<T>(_ body: () throws -> T) throws -> T {
        let home = open("/proc/thread-self/ns/net", O_RDONLY)
        let target = open("/run/netns/\(name)", O_RDONLY)
        defer { Glibc.close(home); Glibc.close(target) }
        guard home >= 0, target >= 0, enterNetworkNamespace(target) else { throw NamespaceError("cannot enter \(name)") }
        defer { precondition(enterNetworkNamespace(home), "cannot return to the test's own namespace") }
        return try body()
    }

    /// A `NetlinkBackend` whose socket lives in this namespace. Close it before the test ends.
    func backend() throws -> NetlinkBackend {
        try entered { try NetlinkBackend() }
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    @discardableResult
    func exec(_ argv: [String], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(["ip", "netns", "exec", name] + argv, input: input)
    }

    /// Feeds an nft script to `nft -f -` inside the namespace; throws with nft's message on failure.
    func nft(_ script: String) throws {
        let r = try exec(["nft", "-f", "-"], input: script)
        guard r.status == 0 else { throw NamespaceError("nft -f failed: \(r.stderr)\n\(script)") }
    }

    /// Output of an nft command inside the namespace (`list table inet fwenforcer` ...).
    func nftOutput(_ args: [String]) throws -> String {
        let r = try exec(["nft"] + args)
        guard r.status == 0 else { throw NamespaceError("nft \(args.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    /// Deletes namespaces of this prefix left by test processes that no longer run.
    static func removeStale() {
        guard let list = try? run(["ip", "netns", "list"]) else { return }
        for line in list.stdout.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).split(separator: "-").first ?? "") else { continue }
            if pid != getpid(), kill(pid, 0) != 0 { _ = try? run(["ip", "netns", "del", name]) }
        }
    }
}

struct NamespaceError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
