import Testing
@testable import Enforcer

/// Published container ports (`docker run -p`) meet the role's ingress allow-list on the forward
/// hook, walked through the tracer as the kernel walks them: the connection's first packet is
/// DNATed in prerouting, so it reaches `forward` with the container's address and port, and
/// `ct original proto-dst` still says which port of this host it was addressed to.
@Suite struct PublishedPortsTests {
    static let registry = """
    [host]
    roles = ["DOCKER_REGISTRY"]
    catalog = "cloudcenter"

    [groups]
    workers = ["198.18.128.0/17", "fd00:128::/64"]
    admin_ssh = ["198.19.0.0/24"]
    """
    static let host = "198.18.0.60"
    static let container = "198.18.200.2"

    static func ruleset(_ text: String = registry) throws -> Ruleset {
        let config = try Config.parse(text: text, file: "registry.conf")
        return Compiler.compile(config: config, roles: try config.resolveRoles(hostAddresses: [])).ruleset
    }

    /// A packet of a connection to `host:published` that DNAT sent to `container:port`.
    static func published(from source: String, _ published: UInt16, to port: UInt16, to container: String = container,
                          _ proto: TransportProtocol = .tcp, conntrack: TracedPacket.Conntrack = .new) -> TracedPacket {
        TracedPacket(from: IPAddress(source)!, to: IPAddress(container)!, proto, port: port, conntrack: conntrack,
                     interface: "docker0", originalDestinationPort: published)
    }

    @Test func thePublishedRegistryPortIsReachableFromWorkersOnly() throws {
        let t = Tracer(try Self.ruleset())
        #expect(t.accepts(Self.published(from: "198.18.130.7", 5000, to: 5000), at: .forward))
        #expect(t.accepts(Self.published(from: "fd00:128::7", 5000, to: 5000, to: "fd00:200::2"), at: .forward))
        let outsider = t.trace(Self.published(from: "198.18.0.99", 5000, to: 5000), hook: .forward)
        #expect(outsider.verdict == .drop)
        #expect(outsider.comment == Compiler.denyRuleComment)
        // A later packet of an outsider's connection (established in an earlier ruleset) is
        // dropped too: original-direction packets meet the allow rules every time.
        #expect(!t.accepts(Self.published(from: "198.18.0.99", 5000, to: 5000, conntrack: .establishedOriginal), at: .forward))
        // Replies from the container to an allowed worker pass.
        #expect(t.accepts(TracedPacket(from: IPAddress(Self.container)!, to: IPAddress("198.18.130.7")!, sourcePort: 5000, port: 40000,
                                       conntrack: .reply, originalDestinationPort: 40000), at: .forward))
    }

    /// `-p 5000:80`: the catalog speaks of the host's port, whatever the container listens on.
    @Test func theHostPortDecidesNotTheContainerPort() throws {
        let t = Tracer(try Self.ruleset())
        #expect(t.accepts(Self.published(from: "198.18.130.7", 5000, to: 80), at: .forward))
        #expect(!t.accepts(Self.published(from: "198.18.130.7", 8080, to: 5000), at: .forward))
        #expect(!t.accepts(Self.published(from: "198.18.130.7", 5000, to: 5000, .udp), at: .forward))
        // The lockout failsafe holds for a published 22 as for the host's own sshd.
        #expect(t.accepts(Self.published(from: "198.19.0.5", 22, to: 2222), at: .forward))
    }

    @Test func trafficThatWasNotDNATedIsNotThisChainsBusiness() throws {
        let t = Tracer(try Self.ruleset())
        // The container's own egress (masqueraded later, in postrouting) and routed traffic.
        let egress = TracedPacket(from: IPAddress(Self.container)!, to: IPAddress("198.18.9.9")!, port: 443, interface: "docker0")
        #expect(t.trace(egress, hook: .forward).comment == "not DNATed to a published port")
        // No conntrack entry: no `ct` test matches, the chain's policy (accept) decides, as the
        // kernel's does, instead of the DNAT drop.
        let invalid = TracedPacket(from: IPAddress("198.18.0.99")!, to: IPAddress(Self.container)!, port: 5000, conntrack: .invalid)
        #expect(t.trace(invalid, hook: .forward).comment == "policy")
        #expect(t.accepts(invalid, at: .forward))
    }

    @Test func theForwardChainFollowsTheIngressMode() throws {
        let audit = try Self.ruleset(Self.registry + "\n[enforce]\ningress = \"audit\"\n")
        let forward = audit.chain(named: Compiler.publishedPortsChainName)!
        #expect(forward.rules.last?.comment == Compiler.auditRuleComment)
        #expect(Tracer(audit).accepts(Self.published(from: "198.18.0.99", 5000, to: 5000), at: .forward))
        let off = try Self.ruleset(Self.registry + "\n[enforce]\ningress = \"off\"\n")
        #expect(off.chains.map(\.hook) == [.output])
        // Policy accept in every mode: the default deny is the last rule, for DNATed connections only.
        #expect(try Self.ruleset().chain(named: "forward")?.policy == .accept)
    }

    /// Several ports to one group become one rule per port range (`ct original proto-dst` takes no
    /// port set nft 1.0.6 can print), and every rule reads back from the kernel form unchanged.
    @Test func portListsSplitAndEveryRuleReadsBack() throws {
        let rs = try Self.ruleset("""
            [host]
            roles = ["AMQP"]
            catalog = "cloudcenter"
            version = "4.10"
            [groups]
            workers = ["198.18.128.0/17"]
            """)
        let forward = rs.chain(named: "forward")!
        let fromWorkers = forward.rules.filter { $0.matches.first == .addressInSet(.source, .ipv4, set: "workers_v4") }
        let inputPorts = rs.chain(named: "input")!.rules.compactMap { rule -> [PortRange]? in
            guard rule.matches.first == .addressInSet(.source, .ipv4, set: "workers_v4"),
                  case .ports(.destination, .tcp, let ports)? = rule.matches.last else { return nil }
            return ports
        }.flatMap { $0 }
        #expect(inputPorts == [PortRange(5671), PortRange(7789)])
        #expect(fromWorkers.map(\.matches.last) == inputPorts.map { .originalDestinationPort(.tcp, $0) })
        for chain in rs.chains { for rule in chain.rules { #expect(KernelForm.canonical(rule) == rule, "\(NftRenderer.render(rule: rule))") } }
    }

    /// No valid plan yet (the fail-closed baseline): a published port is closed like the host's
    /// own, but for administrators' SSH.
    @Test func theBaselineClosesPublishedPortsToo() throws {
        let config = try Config.parse(text: Self.registry, file: "registry.conf")
        let t = Tracer(Baseline.ruleset(Baseline.Inputs(config)))
        #expect(!t.accepts(Self.published(from: "198.18.130.7", 5000, to: 5000), at: .forward))
        #expect(t.accepts(Self.published(from: "198.19.0.5", 22, to: 22), at: .forward))
        #expect(t.accepts(TracedPacket(from: IPAddress(Self.container)!, to: IPAddress("198.18.9.9")!, port: 443), at: .forward))
    }
}
