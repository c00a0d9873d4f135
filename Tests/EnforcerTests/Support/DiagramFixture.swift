import Foundation
@testable import Enforcer

/// An end-to-end topology (Tests/e2e/topologies) as the diagram tests use it: the shared config
/// the lab's VMs enforce, its picture, and the end-to-end model's independent idea of what passes.
struct DiagramFixture {
    let topology: LabTopology
    let configText: String
    let config: Config
    let model: FlowModel
    let allRows: [CatalogJSONRow]
    let flows: DeploymentFlows

    init(_ name: String, strict: Bool = false) throws {
        var t = try LabTopology.load(name)
        t.strict = strict
        topology = t
        let groups = t.configGroups()
        configText = t.configText(groups: groups)
        config = try Config.parse(text: configText, file: "\(name).conf")
        allRows = try CatalogJSONRow.load(catalog: t.catalog)
        model = FlowModel(allRows: allRows, topology: t, groups: groups)
        flows = DeploymentFlows.trace(config)
    }

    var provenance: DiagramProvenance { DiagramProvenance(config: config, configBytes: Array(configText.utf8)) }

    func graph(_ grouping: FlowGraph.Grouping = .byRole) -> FlowGraph { FlowGraph(flows, grouping: grouping) }

    /// The roles an address takes in the model: the catalog roles whose groups list it.
    func roles(of address: String) -> Set<String> {
        Set(model.roleNames.filter { model.isMember(address, of: $0) })
    }

    /// The lab's (host, address) pairs a diagram node stands for, by the model's own membership.
    func endpoints(of node: FlowGraph.Node) -> [(host: String, address: String)] {
        var out: [(String, String)] = []
        for h in topology.hosts {
            for a in h.addresses {
                switch node.kind {
                case .roles(let r):
                    if roles(of: a.address) == Set(r) { out.append((h.name, a.address)) }
                case .group(let g):
                    guard roles(of: a.address).isEmpty else { continue }
                    let member = g == "any" && model.groups["any"] == nil ? h.anywhere : model.isMember(a.address, of: g)
                    if member { out.append((h.name, a.address)) }
                }
            }
        }
        return out
    }
}

/// A diagram edge label's first line ("tcp 443, 8443-8445", "tcp all ports", "any protocol, all
/// ports"): the probe ports it stands for and whether it covers one.
struct PortsLabel {
    let text: String

    var protocols: [String] { text.hasPrefix("any protocol") ? ["tcp", "udp"] : [String(text.split(separator: " ")[0])] }

    private var ranges: [ClosedRange<Int>]? {
        if text.hasSuffix("all ports") { return nil }
        return text.split(separator: " ", maxSplits: 1)[1].split(separator: ",").map { r in
            let b = r.trimmingCharacters(in: .whitespaces).split(separator: "-").map { Int($0)! }
            return b[0]...(b.count > 1 ? b[1] : b[0])
        }
    }

    /// Each port and both ends of each range; for all ports, the model's own sample port.
    var samplePorts: [Int] { ranges.map { $0.flatMap { [$0.lowerBound, $0.upperBound] } } ?? [ProbePlan.samplePort] }

    func covers(proto: String, port: Int) -> Bool {
        guard protocols.contains(proto) else { return false }
        return ranges.map { $0.contains { $0.contains(port) } } ?? true
    }
}
