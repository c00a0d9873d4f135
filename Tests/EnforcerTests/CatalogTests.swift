import Testing
@testable import Enforcer

/// The built-in catalogs against the seed tables (see docs/catalog-decisions.md).
@Suite struct CatalogTests {
    static let cloudcenter = try! Catalog.load("cloudcenter")
    static let cloudify = try! Catalog.load("cloudify")

    /// Rows per role, counted from the seed's tables with "Ingress/Egress" as two rows.
    static let cloudcenterCounts: [String: Int] = [
        "CCM": 14, "CCM_SA": 15, "CCM_SA_PRIMARY": 16, "CCM_SA_SECONDARY": 16, "CCM_LB": 10,
        "MGMTPOSTGRES": 4, "MGMTPOSTGRES_MASTER": 16, "MGMTPOSTGRES_SLAVE": 16,
        "CCO": 8, "CCO_PRIMARY": 11, "CCO_SECONDARY": 11, "CCO_TERTIARY": 11, "CCO_LB": 5,
        "AMQP": 7, "AMQP_PRIMARY": 11, "AMQP_SECONDARY": 11, "AMQP_LB": 5,
        "EXT_SCRIPT_EXECUTOR": 5, "GUAC": 8,
        "MON": 9, "MON_PRIMARY": 8, "MON_SECONDARY": 8, "MON_LB": 8,
        "BUNDLE_STORE": 2, "PACKAGE_STORE": 6, "DOCKER_REGISTRY": 4,
    ]

    @Test func cloudcenterHasEveryRoleOfTheSeed() {
        #expect(Self.cloudcenter.roles.count == 26)
        #expect(Set(Self.cloudcenter.roles.map(\.name)) == Set(Self.cloudcenterCounts.keys))
    }

    @Test(arguments: cloudcenterCounts.keys.sorted())
    func cloudcenterRowCount(_ role: String) {
        #expect(Self.cloudcenter.rows(of: role).count == Self.cloudcenterCounts[role])
    }

    @Test func cloudifyRows() {
        #expect(Self.cloudify.roles.map(\.name) == ["AGENT", "MANAGER"])
        #expect(Self.cloudify.rows(of: "MANAGER").count == 4)
        #expect(Self.cloudify.rows(of: "AGENT").count == 3)
        let managerIn = Self.cloudify.rows(of: "MANAGER").filter { $0.direction == .ingress && $0.remote == ["AGENT"] }
        #expect(Set(managerIn.flatMap(\.ports).map(\.first)) == [5671, 53229, 53333])
    }

    @Test func corosyncIsUDPAndEverythingElseTCPOrAny() {
        for row in Self.cloudcenter.rows {
            if row.ports.contains(PortRange(5405)) {
                #expect(row.proto == .udp, "\(row.id)")
            } else {
                #expect(row.proto == .tcp || (row.proto == .any && row.allPorts), "\(row.id)")
            }
        }
    }

    @Test func dockerEnginePortDependsOnVersion() {
        let old = ProductVersion("4.6.1")!, new = ProductVersion("4.6.2")!
        let ext = Self.cloudcenter.rows(of: "EXT_SCRIPT_EXECUTOR")
        let at = { (v: ProductVersion) in Set(ext.filter { $0.applies(features: [], version: v) }.flatMap(\.ports).map(\.first)) }
        #expect(at(old).contains(2375) && !at(old).contains(2376))
        #expect(at(new).contains(2376) && !at(new).contains(2375))
        let cco = Self.cloudcenter.rows(of: "CCO").filter { $0.ports == [PortRange(2375)] || $0.ports == [PortRange(2376)] }
        #expect(cco.count == 2 && cco.allSatisfy { $0.versions != nil })
    }

    @Test func optionalRowsAreFeatureGated() {
        let esb = Self.cloudcenter.rows.filter { $0.feature == "esb" }
        #expect(!esb.isEmpty && esb.allSatisfy { Set($0.ports.map(\.first)).isSubset(of: [5671, 15672]) })
        #expect(Self.cloudcenter.rows(of: "PACKAGE_STORE").contains { $0.feature == "container_images" && $0.ports == [PortRange(5000)] })
    }

    @Test func oneSidedRowsAreFound() {
        let oneSided = Self.cloudcenter.oneSidedRows()
        // AMQP accepts 5671 from CCO, but no CCO table lists egress 5671 to AMQP.
        #expect(oneSided.contains { $0.row.role == "AMQP" && $0.row.ports == [PortRange(5671)] && $0.missingAt.contains("CCO") })
        // CCM and CCO both document their 8443 exchange: not one-sided between them.
        let ccm8443 = oneSided.filter { $0.row.role == "CCM_SA" && $0.row.ports == [PortRange(8443)] }
        #expect(!ccm8443.contains { $0.missingAt.contains("CCO") })
    }

    @Test func everyRowIDIsUniqueAndNumberedPerRole() {
        let ids = Self.cloudcenter.rows.map(\.id)
        #expect(Set(ids).count == ids.count)
        #expect(Self.cloudcenter.rows(of: "CCO").map(\.id).first == "CCO#1")
    }

    struct BadCatalog: Sendable, CustomTestStringConvertible {
        let name: String
        let rule: String
        let message: String
        var testDescription: String { name }
    }

    static let badCatalogs: [BadCatalog] = [
        BadCatalog(name: "port 0", rule: "ports = [0]", message: "port 0 is outside 1-65535"),
        BadCatalog(name: "port 65536", rule: "ports = [65536]", message: "port 65536 is outside 1-65535"),
        BadCatalog(name: "reversed range", rule: "ports = [\"90-80\"]", message: "ends before it starts"),
        BadCatalog(name: "range out of bounds", rule: "ports = [\"1-70000\"]", message: "outside 1-65535"),
        BadCatalog(name: "any proto with ports", rule: "ports = [80]\nproto = \"any\"", message: "goes only with ports = \"all\""),
        BadCatalog(name: "bad proto", rule: "ports = [80]\nproto = \"sctp\"", message: "not tcp, udp or any"),
        BadCatalog(name: "unknown key", rule: "ports = [80]\nport = 80", message: "unknown key"),
    ]

    @Test(arguments: badCatalogs)
    func badCatalogIsLocated(_ c: BadCatalog) {
        let text = "[catalog]\nname = \"t\"\n[roles]\nA = \"a\"\n[[rule]]\nrole = \"A\"\ndirection = \"ingress\"\nremote = [\"A\"]\n\(c.rule)\n"
        #expect {
            try Catalog.parse(text: text, file: "t.toml")
        } throws: { error in
            let e = error as! InputError
            return e.line != nil && e.key?.hasPrefix("[[rule]] #1") == true && e.message.contains(c.message)
        }
    }
}
