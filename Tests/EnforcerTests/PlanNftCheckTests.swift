import Foundation
import Testing
@testable import Enforcer

/// Every role of both catalogs, planned over a representative topology (every group populated with
/// IPv4 and IPv6 hosts, CIDRs and overlapping ranges, every feature on), is accepted by `nft -c`.
@Suite(.enabled(if: canUseNetns, "needs root and nft to check plans in a network namespace"))
struct PlanNftCheckTests {
    static func representativeConfig(_ catalog: Catalog) throws -> Config {
        var lines = ["[host]", "roles = \"auto\"", "catalog = \"\(catalog.name)\"",
                     "features = [\(catalog.features.map { "\"\($0.name)\"" }.joined(separator: ", "))]",
                     "[enforce]", "ping = true", "dhcp_client = true", "[groups]"]
        var n = 0
        for g in catalog.roles.map(\.name) + catalog.groups.map(\.name) {
            n += 1
            let third = n
            lines.append("\(g) = [\"198.18.\(third).1\", \"198.18.\(third).2\", \"198.18.\(third).128/25\", \"198.18.\(third).130\", \"fd00:\(third)::1\", \"fd00:\(third):1::/48\"]")
        }
        return try Config.parse(text: lines.joined(separator: "\n"), file: "representative.conf")
    }

    static let all: [(String, String)] = Catalog.builtInNames.flatMap { name in
        (try! Catalog.load(name)).roles.map { (name, $0.name) }
    }

    @Test(arguments: all)
    func planIsAcceptedByNft(_ catalogName: String, _ role: String) throws {
        let cfg = try Self.representativeConfig(try Catalog.load(catalogName))
        let text = NftRenderer.render(Compiler.compile(config: cfg, roles: [role]).ruleset)
        let r = try nftCheck(text)
        #expect(r.ok, "nft -c rejected the plan for \(catalogName)/\(role): \(r.message)")
    }

    @Test func shippedSamplePlanIsAccepted() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("etc/fwenforcer.conf").path
        let cfg = try Config.load(path: path)
        let roles = try cfg.resolveRoles(hostAddresses: [])
        let r = try nftCheck(NftRenderer.render(Compiler.compile(config: cfg, roles: roles).ruleset))
        #expect(r.ok, "\(r.message)")
    }
}
