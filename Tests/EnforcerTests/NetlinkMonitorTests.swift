import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The monitor against real kernel events, in a namespace of its own.
@Suite(.enabled(if: canUseNetns, "needs root to make a network namespace"))
struct NetlinkMonitorTests {
    /// Makes a named namespace, creates the monitor socket inside it (setns on this thread, then
    /// back), runs `body`, and always deletes the namespace.
    func withMonitor(table: String = "fwenforcer", _ body: (NetlinkMonitor, _ nft: (String) throws -> Void) throws -> Void) throws {
        let name = "fwe-mon-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try run(["ip", "netns", "add", name])
        defer { _ = try? run(["ip", "netns", "del", name]) }
        let home = open("/proc/thread-self/ns/net", O_RDONLY)
        let target = open("/run/netns/\(name)", O_RDONLY)
        defer { Glibc.close(home); Glibc.close(target) }
        #expect(enterNetworkNamespace(target))
        let made = Result { () throws(BackendError) -> NetlinkMonitor in try NetlinkMonitor(table: table) }
        #expect(enterNetworkNamespace(home))
        let monitor = try made.get()
        defer { monitor.close() }
        try body(monitor) { script in
            let r = try run(["ip", "netns", "exec", name, "nft", "-f", "-"], input: script)
            #expect(r.status == 0, "\(r.stderr)")
        }
    }

    @Test func foreignCommitsToOurTableAreReportedOthersAreNot() throws {
        try withMonitor { monitor, nft in
            try nft("add table inet fwenforcer\nadd set inet fwenforcer CCM_v4 { type ipv4_addr; }\n")
            try nft("add table inet somebody_else\n")
            try nft("add element inet fwenforcer CCM_v4 { 198.18.0.7 }\n")
            try nft("flush ruleset\n")
            let commits = try monitor.drain().compactMap { e -> RulesetCommit? in if case .commit(let c) = e { return c } else { return nil } }
            #expect(commits.count == 4)
            #expect(commits.map(\.touchedTable) == [true, false, true, true])
            #expect(commits.allSatisfy { !$0.own && $0.process.hasPrefix("nft") })
            #expect(zip(commits, commits.dropFirst()).allSatisfy { $1.generation == $0.generation &+ 1 })
            #expect(try monitor.drain().isEmpty)
        }
    }

    /// A drain stops at its budget and leaves the rest queued for the next turn, losing nothing: a
    /// writer committing without pause cannot hold the daemon's loop in the monitor's handler.
    @Test func aDrainStopsAtItsBudgetAndTheRestFollows() throws {
        try withMonitor { monitor, nft in
            try nft((0..<20).map { "add table inet t\($0)\n" }.joined())
            try nft((0..<20).map { "delete table inet t\($0)\n" }.joined())
            for i in 0..<30 { try nft("add table inet fwenforcer\nadd set inet fwenforcer S\(i) { type ipv4_addr; }\n") }
            let one = DrainBudget(reads: 1, time: .seconds(1))
            var turns = 0
            var commits = 0
            // A turn may end between a batch's object messages and its NEWGEN: then it reports nothing yet.
            while commits < 32 && turns < 1000 {
                commits += try monitor.drain(budget: one).filter { if case .commit = $0 { return true } else { return false } }.count
                turns += 1
            }
            #expect(commits == 32, "every commit still arrives, over several turns")
            #expect(turns > 1, "one read per turn: \(turns) turns")
            #expect(try monitor.drain().isEmpty)
        }
    }
}
