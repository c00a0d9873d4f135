import Testing
@testable import Enforcer

@Suite struct TopologyCheckTests {
    /// Two hosts per role of the catalog (so flows between members of one role show), every feature on.
    static func fullTopology(strict: Bool) throws -> Config {
        let catalog = try Catalog.load("cloudcenter")
        var text = "[host]\nroles = \"auto\"\ncatalog = \"cloudcenter\"\nstrict = \(strict)\nfeatures = [\"esb\", \"container_images\"]\n[groups]\n"
        for (i, role) in catalog.roles.map(\.name).enumerated() { text += "\(role) = [\"198.18.0.\(i + 1)\", \"198.18.1.\(i + 1)\"]\n" }
        text += "workers = [\"198.18.128.0/17\"]\nadmin_ssh = [\"198.19.0.0/24\"]\n"
        return try Config.parse(text: text, file: "full.conf")
    }

    @Test func everyOneSidedRowAppearsInAStrictTopology() throws {
        let cfg = try Self.fullTopology(strict: true)
        let report = TopologyReport.check(cfg)
        let reported = Set(report.findings.filter { $0.kind == .blockedAtOtherEnd }.flatMap(\.rows))
        let oneSided = cfg.catalog.oneSidedRows(features: Set(cfg.host.features), version: cfg.effectiveVersion)
        #expect(!oneSided.isEmpty)
        for (row, missing) in oneSided {
            #expect(reported.contains(row.id), "\(row.id) is one-sided (not in \(missing)) but not reported")
        }
        #expect(report.hasErrors)
    }

    @Test func defaultSemanticsMakeTheSameTopologyConsistent() throws {
        let report = TopologyReport.check(try Self.fullTopology(strict: false))
        #expect(report.findings.filter { $0.kind == .blockedAtOtherEnd }.isEmpty)
        #expect(!report.hasErrors)
        #expect(report.hosts.count == 52)
    }

    @Test func warnsAboutMissingPeersSharedAddressesAndUnusedGroups() throws {
        let cfg = try Config.parse(text: """
            [host]
            roles = "auto"
            [groups]
            CCO = ["198.18.0.20"]
            CCM_SA = ["198.18.0.10", "198.18.0.20"]
            esb_clients = ["198.19.5.0/24"]
            """, file: "t.conf")
        let kinds = TopologyReport.check(cfg).findings.map(\.kind)
        #expect(kinds.contains(.missingPeerRole))       // CCO present, no AMQP
        #expect(kinds.contains(.addressInSeveralRoles)) // 198.18.0.20 is CCO and CCM_SA
        #expect(kinds.contains(.unusedGroup))           // esb feature is off
    }
}
