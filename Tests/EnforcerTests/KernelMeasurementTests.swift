import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// Figures behind the hash-or-interval decision in docs/netlink.md: for sets of host addresses,
/// a hash set against an interval set of the same hosts. Off by default (it takes a minute);
/// run with
/// `FWE_MEASURE=1 swift test -c release -Xswiftc -enable-testing --filter KernelMeasurement` on a quiet machine.
@Suite(.enabled(if: kernelTestsAvailable && ProcessInfo.processInfo.environment["FWE_MEASURE"] == "1",
                "set FWE_MEASURE=1 (and run as root) to measure hash against interval sets"))
struct KernelMeasurementTests {
    /// CPU time of this thread, user and system (the kernel handles a netlink batch, a dump and a
    /// packet's trip through the hooks in the sending thread's context).
    static func cpu() -> (user: Double, system: Double) {
        var u = rusage()
        getrusage(__rusage_who_t(1), &u)   // RUSAGE_THREAD (needs _GNU_SOURCE, so not imported)
        return (Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6, Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6)
    }

    static func measure(_ body: () throws -> Void) rethrows -> (wall: Double, system: Double) {
        let c0 = cpu(), t0 = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - t0, c1 = cpu()
        return (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18, c1.system - c0.system)
    }

    /// Sends `count` UDP datagrams to `address` from a socket in the namespace; returns system
    /// CPU seconds per packet (the output hook's rules run in this thread).
    /// The median of three rounds of `sendCost`.
    static func medianSendCost(_ ns: NetworkNamespace, to address: String, count: Int) throws -> Double {
        try (0..<3).map { _ in try sendCost(ns, to: address, count: count) }.sorted()[1]
    }

    static func sendCost(_ ns: NetworkNamespace, to address: String, count: Int) throws -> Double {
        let fd = try ns.entered { socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0) }
        defer { close(fd) }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = UInt16(9).bigEndian
        _ = inet_pton(AF_INET6, address, &sa.sin6_addr)
        var byte: UInt8 = 0
        let r = measure {
            for _ in 0..<count {
                _ = withUnsafePointer(to: &sa) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, &byte, 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            }
        }
        return r.system / Double(count)
    }

    @Test func hashVersusIntervalForHosts() throws {
        var report = ["| hosts | kind | kernel elements | apply (wall / kernel) | full read (wall / kernel) | one peer replaced | per packet, miss / hit |",
                      "|---|---|---|---|---|---|---|"]
        for count in [100, 1_000, 10_000, 100_000] {
            for interval in [false, true] {
                try NetworkNamespace.with { ns in
                    let backend = try ns.backend()
                    defer { backend.close() }
                    _ = try ns.exec(["ip", "-6", "addr", "add", "fd00::4/128", "dev", "lo"])
                    let hosts = KernelScaleTests.hosts(count)
                    let set = NamedSet(name: "S", family: .ipv6, interval: interval, elements: hosts)
                    // Every packet leaving the host looks its destination up in the set.
                    let rule = Rule(matches: [.addressInSet(.destination, .ipv6, set: "S")], statements: [.counter], verdict: nil)
                    let ruleset = Ruleset(sets: [set], chains: [Chain(name: "output", hook: .output, policy: .accept, rules: [rule])])
                    let empty = Ruleset(chains: [Chain(name: "output", hook: .output, policy: .accept, rules: [])])
                    _ = try backend.replace(with: empty)
                    let baseMiss = try Self.medianSendCost(ns, to: "::1", count: 300_000)
                    // Let the previous namespace's (asynchronous) teardown finish first.
                    Thread.sleep(forTimeInterval: 2)
                    let apply = try Self.measure { _ = try backend.replace(with: ruleset) }
                    let read = try Self.measure { _ = try backend.read(table: "fwenforcer") }
                    var changed = ruleset
                    changed.sets[0] = NamedSet(name: "S", family: .ipv6, interval: interval,
                                               elements: AddressSet(family: .ipv6, ranges: hosts.ranges.dropLast() + KernelScaleTests.hosts(1, offset: 10_000_000).ranges))
                    var replaceTimes: [Double] = []
                    var current = ruleset
                    for _ in 0..<5 {
                        let tx = Diff.transaction(from: current, to: changed)
                        replaceTimes.append(try Self.measure { _ = try backend.apply(tx) }.wall)
                        swap(&current, &changed)
                    }
                    let miss = try Self.medianSendCost(ns, to: "::1", count: 300_000) - baseMiss
                    let hit = try Self.medianSendCost(ns, to: "fd00::4", count: 300_000) - baseMiss
                    let elements = interval ? 2 * count + 1 : count
                    func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
                    report.append("| \(count) | \(interval ? "interval" : "hash") | \(elements) | \(ms(apply.wall)) / \(ms(apply.system)) | "
                                  + "\(ms(read.wall)) / \(ms(read.system)) | \(String(format: "%.0f µs", replaceTimes.sorted()[2] * 1e6)) | "
                                  + String(format: "%+.0f ns / %+.0f ns |", miss * 1e9, hit * 1e9))
                }
            }
        }
        print(report.joined(separator: "\n"))
    }
}
