import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// NFT_TABLE_F_PERSIST is from Linux 6.9.
let kernelHasTablePersist: Bool = {
    let parts = kernelRelease().split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
    return parts.count == 2 && (parts[0], parts[1]) >= (6, 9)
}()

/// `[enforce] owner = true` on the real kernel (NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST, Linux
/// 6.9+), with the real `nft` as the other process: what it can and cannot do to the table while
/// the daemon runs, after the daemon stops or is killed, and when a new daemon starts.
@Suite(.serialized, .enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath)
                                && kernelHasTablePersist,
                             "needs root, nft, the built fwenforcerd and Linux 6.9 or later"))
struct OwnedTableTests {
    static func config(owner: Bool) -> String {
        ContainerHostTests.config() + "\n[enforce]\nowner = \(owner)\n"
    }

    static func nft(_ lab: Lab, _ args: String...) throws -> LabCommandResult {
        try lab.exec(ContainerHost.hostVM.name, ["nft"] + args)
    }

    /// The table's text, without nft's `# progname` comment and the flags line.
    static func rules(_ lab: Lab) throws -> String? {
        guard let t = try ContainerHostTests.table(lab) else { return nil }
        return t.replacingOccurrences(of: " # progname fwenforcerd", with: "")
            .split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.hasPrefix("\tflags ") }.joined(separator: "\n")
    }

    @Test func onlyTheDaemonChangesItsTableUntilItExitsAndTheNextOneAdoptsIt() throws {
        let lab = try Lab(label: "owner", vms: [ContainerHost.hostVM])
        defer { lab.teardown() }
        var daemon = try ContainerHostTests.startDaemon(lab, config: Self.config(owner: true))
        defer { daemon.stop() }
        #expect(try eventually(5) { try ContainerHostTests.table(lab)?.contains("flags owner") == true }, "\(daemon.output)")
        let planned = try Self.rules(lab)

        // While the daemon runs: nobody else changes or deletes the table ...
        let insert = try Self.nft(lab, "insert", "rule", "inet", "fwenforcer", "input", "tcp", "dport", "2222", "accept")
        #expect(!insert.ok && insert.stderr.contains("Operation not permitted"))
        let delete = try Self.nft(lab, "delete", "table", "inet", "fwenforcer")
        #expect(!delete.ok && delete.stderr.contains("Operation not permitted"))
        // ... and `flush ruleset` (Debian's nftables.service) succeeds but passes over it.
        #expect(try Self.nft(lab, "flush", "ruleset").ok)
        let conf = lab.dir.appendingPathComponent("nftables.conf").path
        try ContainerHostTests.stockNftablesConf.write(toFile: conf, atomically: false, encoding: .utf8)
        #expect(try Self.nft(lab, "-f", conf).ok)
        #expect(try Self.rules(lab) == planned)
        #expect(try Self.nft(lab, "list", "table", "inet", "filter").ok)
        #expect(!daemon.output.contains("drift"), "no repair was needed: \(daemon.output)")
        let status = try lab.check(ContainerHost.hostVM.name, [fwenforcerdPath, "status", "--state-file", lab.dir.path + "/state.json",
                                                               "--pending-file", lab.dir.path + "/pending.json"]).stdout
        #expect(status.contains("  table: owned by netlink port "), "\(status)")

        // A second daemon (another lock file) cannot take it.
        let d = lab.dir.path
        let second = try lab.spawn(ContainerHost.hostVM.name,
                                   [fwenforcerdPath, "run", "--config", d + "/fwenforcer.conf", "--state-file", d + "/state2.json",
                                    "--lock-file", d + "/lock2", "--pending-file", d + "/pending2.json"], label: "second")
        #expect(second.waitForLine(timeout: 10) { $0.contains("owned by the netlink socket of another process") }, "\(second.output)")
        second.stop()

        // The daemon stops: the table stays in force, orphaned, and the operator's nft may change it.
        daemon.stop()
        #expect(try Self.rules(lab) == planned)
        #expect(try lab.check(ContainerHost.hostVM.name, [fwenforcerdPath, "status", "--state-file", lab.dir.path + "/state.json",
                                                          "--pending-file", lab.dir.path + "/pending.json"]).stdout.contains("  table: orphaned"))
        #expect(try Self.nft(lab, "insert", "rule", "inet", "fwenforcer", "input", "tcp", "dport", "2222", "accept").ok)

        // A new daemon adopts it (and repairs the operator's change); nft is refused again.
        daemon = try ContainerHostTests.startDaemon(lab, config: Self.config(owner: true))
        #expect(daemon.waitForLine(timeout: 10) { $0.contains("adopted the orphaned table") }, "\(daemon.output)")
        #expect(try eventually(5) { try Self.rules(lab) == planned })
        #expect(try !Self.nft(lab, "delete", "table", "inet", "fwenforcer").ok)

        // Killed (no chance to clean up): the table stays; the operator may then delete it.
        kill(daemon.pid, SIGKILL)
        #expect(try eventually(5) { try Self.nft(lab, "delete", "table", "inet", "fwenforcer").ok })
        #expect(try ContainerHostTests.table(lab) == nil)
    }

    /// A host that ran with a shared table switches to `owner = true`: the kernel cannot add
    /// NFT_TABLE_F_PERSIST to a table, so the daemon replaces it by an owned one in one batch.
    @Test func aSharedTableIsReplacedByAnOwnedOneWithTheSameRules() throws {
        let lab = try Lab(label: "owner-switch", vms: [ContainerHost.hostVM])
        defer { lab.teardown() }
        var daemon = try ContainerHostTests.startDaemon(lab, config: Self.config(owner: false))
        defer { daemon.stop() }
        #expect(try eventually(5) { try ContainerHostTests.table(lab) != nil })
        let shared = try Self.rules(lab)
        #expect(try ContainerHostTests.table(lab)?.contains("flags owner") == false)
        daemon.stop()
        daemon = try ContainerHostTests.startDaemon(lab, config: Self.config(owner: true))
        #expect(daemon.waitForLine(timeout: 10) { $0.contains("replaced by an owned one") }, "\(daemon.output)")
        #expect(try ContainerHostTests.table(lab)?.contains("flags owner") == true)
        #expect(try Self.rules(lab) == shared)
    }
}

extension OwnedTableTests {
    /// `fwenforcerd apply` with `owner = true` writes the table owned by its own socket: when it
    /// exits, the table stays orphaned, a second apply adopts it for its change, and so does the daemon.
    @Test func applyLeavesAnOrphanedTableThatTheDaemonAdopts() throws {
        let lab = try Lab(label: "owner-apply", vms: [ContainerHost.hostVM])
        defer { lab.teardown() }
        let path = try ContainerHostTests.writeConfig(Self.config(owner: true), lab)
        for workers in [["198.18.128.0/17"], ["198.18.128.0/18"]] {
            _ = try ContainerHostTests.writeConfig(ContainerHostTests.config(workers: workers) + "\n[enforce]\nowner = true\n", lab)
            try lab.check(ContainerHost.hostVM.name, [fwenforcerdPath, "apply", "--config", path])
            let table = try ContainerHostTests.table(lab) ?? ""
            #expect(table.contains("\tflags \n") && table.contains(workers[0]), "orphaned, persistent, with the change:\n\(table)")
        }
        let daemon = try ContainerHostTests.startDaemon(lab, config: Self.config(owner: true))
        defer { daemon.stop() }
        #expect(daemon.waitForLine(timeout: 10) { $0.contains("adopted the orphaned table") }, "\(daemon.output)")
        #expect(try eventually(5) { try ContainerHostTests.table(lab)?.contains("198.18.128.0/17") == true })
    }
}

/// What a kernel without the flags answers, on this kernel: a table flag it does not know is
/// refused with EOPNOTSUPP, exactly as a kernel before 6.9 refuses NFT_TABLE_F_PERSIST (0x4) and
/// one before 5.12 NFT_TABLE_F_OWNER.
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct OwnedTableKernelSupportTests {
    @Test func aKernelWithoutTheFlagsGetsAnErrorNamingThem() throws {
        try NetworkNamespace.with { ns in
            let b = try ns.backend()
            defer { b.close() }
            b.tableOwnership = .owned
            b.tableFlags = tableFlagOwner | 0x8   // no kernel knows 0x8 yet
            let error = #expect(throws: BackendError.self) { try b.claim(table: "fwenforcer") }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("needs the table flags NFT_TABLE_F_OWNER and NFT_TABLE_F_PERSIST (Linux 6.9 or later)"), "\(text)")
            #expect(text.contains("set owner = false"))
            #expect(try b.read(table: "fwenforcer").ruleset == nil, "nothing was created")
        }
    }
}

/// On a kernel before 6.9 (Debian 12's 6.1, in the qemu VM), the real refusal.
@Suite(.enabled(if: kernelTestsAvailable && !kernelHasTablePersist, "needs root, nft and a kernel before 6.9"))
struct OwnedTableOldKernelTests {
    @Test func theDaemonsClaimNamesTheMissingFeature() throws {
        try NetworkNamespace.with { ns in
            let b = try ns.backend()
            defer { b.close() }
            b.tableOwnership = .owned
            let error = #expect(throws: BackendError.self) { try b.claim(table: "fwenforcer") }
            #expect(error.map { "\($0)" }?.contains("NFT_TABLE_F_PERSIST (Linux 6.9 or later)") == true)
        }
    }
}
