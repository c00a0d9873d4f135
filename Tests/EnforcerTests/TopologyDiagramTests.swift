import Foundation
import Testing
@testable import Enforcer

let dotAvailable = (try? run(["dot", "-V"]).status) == 0

/// `check --topology --format dot`: the diagram Graphviz lays out must show every host and every
/// flow the end-to-end model (Tests/EnforcerTests/E2EModel.swift, the reference for what the
/// kernel lets through) allows, and nothing it refuses, on the standard and HA CloudCenter labs.
@Suite(.enabled(if: dotAvailable, "Graphviz (Debian package graphviz) is not installed"))
struct TopologyDiagramTests {
    /// Hosts: a node per distinct role set, listing each address of the lab with those roles.
    /// Flows: for every probe the end-to-end test makes of a catalog row's flow, an edge between
    /// the two ends' nodes whose ports cover the probe and whose rows include the probed row.
    @Test(arguments: ["cloudcenter-standard", "cloudcenter-ha"])
    func everyHostAndEveryAllowedFlowOfTheModelIsInTheSVG(_ name: String) throws {
        let f = try DiagramFixture(name)
        let graph = f.graph()
        let svg = try GraphvizSVG.layout(DOTRenderer.render(graph, provenance: f.provenance)).parsed
        #expect(svg.nodes.count == graph.nodes.count)
        #expect(svg.edges.count == graph.edges.count)

        var hostsSeen = 0
        for h in f.topology.hosts {
            for a in h.addresses where !f.roles(of: a.address).isEmpty {
                let roles = f.roles(of: a.address)
                let node = svg.nodes.first { Set($0.title.components(separatedBy: " + ")) == roles }
                #expect(node?.texts.contains(a.address) == true, "\(h.name) \(a.address) (\(roles.sorted())): not in the SVG")
                hostsSeen += 1
            }
        }
        #expect(hostsSeen == f.flows.report.hosts.count)

        let plan = ProbePlan.plan(f.model, f.topology, allRows: f.allRows)
        #expect(plan.inconsistent.isEmpty)
        var checked = 0
        for probe in plan.probes where !probe.rowFlows.isEmpty {
            #expect(probe.expectAllow)
            let s = probe.spec
            let from = nodeTitles(f, address: s.src, rows: probe.rowFlows)
            let to = nodeTitles(f, address: s.dst, rows: probe.rowFlows)
            let found = svg.edges.contains { e in
                let ends = e.title.components(separatedBy: "->")
                return ends.count == 2 && from.contains(ends[0]) && to.contains(ends[1]) && !e.dashed
                    && PortsLabel(text: e.texts[0]).covers(proto: s.proto, port: s.port)
                    && !Set(e.texts.dropFirst().joined(separator: " ").split(separator: " ").map(String.init)).isDisjoint(with: probe.rowFlows)
            }
            #expect(found, "\(s.text) (rows \(probe.rowFlows.joined(separator: ","))): no edge \(from.sorted()) -> \(to.sorted()) in the SVG")
            checked += 1
        }
        #expect(checked > 100)
    }

    /// The converse: every edge drawn is a flow the model allows between the lab hosts it stands
    /// for, on every port of its label, and every dashed edge one it refuses. With strict = true
    /// the one-sided rows of the catalog make dashed edges, which must match the topology check's
    /// blocked-at-other-end findings.
    @Test(arguments: [("cloudcenter-standard", false), ("cloudcenter-ha", false), ("cloudcenter-standard", true)])
    func everyEdgeInTheSVGIsWhatTheModelSays(_ name: String, _ strict: Bool) throws {
        let f = try DiagramFixture(name, strict: strict)
        let graph = f.graph()
        let svg = try GraphvizSVG.layout(DOTRenderer.render(graph, provenance: f.provenance)).parsed
        for e in svg.edges {
            let ends = e.title.components(separatedBy: "->")
            let (from, to) = (try #require(graph.node(ends[0])), try #require(graph.node(ends[1])))
            let label = PortsLabel(text: e.texts[0])
            var probes = 0
            for (srcHost, src) in f.endpoints(of: from) {
                for (dstHost, dst) in f.endpoints(of: to) where srcHost != dstHost && LabFamily.of(src) == LabFamily.of(dst) {
                    for proto in label.protocols {
                        for port in label.samplePorts {
                            let spec = ProbeSpec(srcHost: srcHost, src: src, dstHost: dstHost, dst: dst, proto: proto, port: port)
                            let v = f.model.verdict(spec)
                            #expect(v.allow == !e.dashed, "edge \(e.title) \(e.texts.joined(separator: " / ")): \(spec.text): model says \(v.allow ? "allow" : "deny"): \(v.why)")
                            probes += 1
                        }
                    }
                }
            }
            #expect(probes > 0, "edge \(e.title): no lab host to probe it with")
            #expect(e.dashed == e.texts.contains { $0.hasPrefix("DROPPED at ") })
        }

        let blocked = f.flows.report.findings.filter { $0.kind == .blockedAtOtherEnd }
        #expect(strict ? !blocked.isEmpty : blocked.isEmpty)
        #expect(svg.edges.contains(where: \.dashed) == strict)
        for finding in blocked {
            let flow = try #require(finding.flow)
            let edge = svg.edges.first { e in
                e.dashed && e.title == "\(nodeTitles(f, address: flow.source, rows: []).first ?? "?")->\(nodeTitles(f, address: flow.destination, rows: []).first ?? "?")"
                    && PortsLabel(text: e.texts[0]).covers(proto: flow.protocol == "any" ? "tcp" : flow.protocol, port: flow.port)
            }
            #expect(edge?.texts.contains { $0.contains("DROPPED at") && $0.hasSuffix(flow.blockedDirection) } == true,
                    "\(finding.message): no dashed edge that says where it is dropped")
        }
    }

    /// The SVG names of the nodes an end of a probe can be drawn as: its role node, or the special
    /// groups of the probed rows that hold it.
    func nodeTitles(_ f: DiagramFixture, address: String, rows: [String]) -> Set<String> {
        let roles = f.roles(of: address)
        if !roles.isEmpty {
            return Set(f.graph().nodes.filter { if case .roles(let r) = $0.kind { return Set(r) == roles } else { return false } }.map(\.id))
        }
        let remotes = f.allRows.filter { rows.contains($0.id) }.flatMap(\.remote) + (rows.contains("failsafe") ? ["admin_ssh"] : [])
        return Set(remotes.filter { !f.model.roleNames.contains($0) && ($0 == "any" || f.model.isMember(address, of: $0)) })
    }

    @Test func theSameConfigGivesTheSameBytes() throws {
        let a = try DiagramFixture("cloudcenter-ha"), b = try DiagramFixture("cloudcenter-ha")
        for grouping in [FlowGraph.Grouping.byRole, .perHost] {
            let dotA = DOTRenderer.render(a.graph(grouping), provenance: a.provenance)
            let dotB = DOTRenderer.render(b.graph(grouping), provenance: b.provenance)
            #expect(dotA == dotB)
            let layoutA = Graphviz.layout(dotA), layoutB = Graphviz.layout(dotB)
            #expect(layoutA == layoutB)
            let htmlA = HTMLRenderer.render(flows: a.flows, diagram: a.graph(grouping), dot: dotA, layout: layoutA, provenance: a.provenance)
            let htmlB = HTMLRenderer.render(flows: b.flows, diagram: b.graph(grouping), dot: dotB, layout: layoutB, provenance: b.provenance)
            #expect(htmlA == htmlB)
        }
    }

    /// The order groups and addresses are written in changes the config's hash, nothing else.
    @Test func theOrderOfTheConfigDoesNotChangeThePicture() throws {
        let f = try DiagramFixture("cloudcenter-ha")
        let lines = f.configText.split(separator: "\n", omittingEmptySubsequences: false)
        let groupsAt = lines.firstIndex(of: "[groups]")!
        let reversed = lines[...groupsAt] + lines[(groupsAt + 1)...].filter { !$0.isEmpty }.reversed().map { line -> Substring in
            let parts = line.split(separator: "=", maxSplits: 1)
            let members = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: " []")).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            return Substring("\(parts[0])= [\(members.reversed().joined(separator: ", "))]")
        }
        let text = reversed.joined(separator: "\n") + "\n"
        #expect(text != f.configText)
        let cfg = try Config.parse(text: text, file: "cloudcenter-ha.conf")
        func picture(_ c: Config, _ bytes: String) -> String {
            DOTRenderer.render(FlowGraph(DeploymentFlows.trace(c), grouping: .byRole), provenance: DiagramProvenance(config: c, configBytes: Array(bytes.utf8)))
                .split(separator: "\n").filter { !$0.contains("sha256") }.joined(separator: "\n")
        }
        #expect(picture(cfg, text) == picture(f.config, f.configText))
    }

    /// In audit mode the kernel passes everything in that direction: the picture must say so.
    @Test func aDirectionNotEnforcedIsSaidOnThePicture() throws {
        let text = "[host]\nroles = \"auto\"\n[enforce]\ningress = \"audit\"\n[groups]\nCCO = [\"198.18.0.20\"]\nAMQP = [\"198.18.0.30\"]\n"
        let cfg = try Config.parse(text: text, file: "audit.conf")
        let flows = DeploymentFlows.trace(cfg)
        let provenance = DiagramProvenance(config: cfg, configBytes: Array(text.utf8))
        let graph = FlowGraph(flows, grouping: .byRole)
        let dot = DOTRenderer.render(graph, provenance: provenance)
        let warning = "ingress is audit: in that direction the kernel passes every connection, not only the flows drawn here"
        #expect(dot.contains("// WARNING: \(warning)"))
        let svg = try GraphvizSVG.layout(dot).svg
        #expect(svg.contains("WARNING: \(warning)"))
        let html = HTMLRenderer.render(flows: flows, diagram: graph, dot: dot, layout: .unavailable("test"), provenance: provenance)
        #expect(html.contains("<p class=\"notice\">\(warning).</p>"))
        let enforced = try Config.parse(text: text.replacingOccurrences(of: "\"audit\"", with: "\"enforce\""), file: "enforce.conf")
        #expect(DiagramProvenance(config: enforced, configBytes: []).modeWarning == nil)
    }

    /// Forty CCO VMs are one node that says 40 and shows the first and last address; --per-host
    /// draws all forty, and the flows between roles are the same edges either way.
    @Test func rolesWithManyHostsCollapseIntoOneNodeWithACount() throws {
        var text = "[host]\nroles = \"auto\"\n[groups]\nCCM_SA = [\"198.18.0.10\"]\nAMQP = [\"198.18.0.30\", \"198.18.0.31\"]\nCCO = ["
        text += (1...40).map { "\"198.18.1.\($0)\"" }.joined(separator: ", ") + "]\nadmin_ssh = [\"198.19.0.0/24\"]\n"
        let cfg = try Config.parse(text: text, file: "big.conf")
        let flows = DeploymentFlows.trace(cfg)
        let provenance = DiagramProvenance(config: cfg, configBytes: Array(text.utf8))
        let byRole = FlowGraph(flows, grouping: .byRole), perHost = FlowGraph(flows, grouping: .perHost)
        #expect(byRole.nodes.filter { $0.title == "CCO" }.count == 1)
        #expect(perHost.nodes.filter { $0.title == "CCO" }.count == 40)

        let svg = try GraphvizSVG.layout(DOTRenderer.render(byRole, provenance: provenance)).parsed
        let cco = try #require(svg.nodes.first { $0.title == "CCO" })
        #expect(cco.texts.contains("40 addresses"))
        #expect(cco.texts.contains("198.18.1.1 \u{2026} 198.18.1.40"))
        #expect(!cco.texts.contains("198.18.1.7"))
        let amqp = try #require(svg.nodes.first { $0.title == "AMQP" })
        #expect(amqp.texts.contains("2 addresses") && amqp.texts.contains("198.18.0.31"))
        #expect(svg.edges(from: "CCO", to: "AMQP").count == 1)

        let wide = try GraphvizSVG.layout(DOTRenderer.render(perHost, provenance: provenance)).parsed
        #expect(wide.nodes.count == perHost.nodes.count)
        #expect(wide.nodes.contains { $0.title == "CCO 198.18.1.7" && $0.texts.contains("198.18.1.7") })
        // Between role pairs, the per-host edges carry the same ports and rows as the collapsed ones.
        func summary(_ g: FlowGraph) -> Set<String> {
            Set(g.edges.map { "\(g.node($0.from)!.title)>\(g.node($0.to)!.title) \($0.portsText) \($0.rows)" })
        }
        #expect(summary(perHost) == summary(byRole))
    }
}
