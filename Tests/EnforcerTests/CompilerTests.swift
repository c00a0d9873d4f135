import Testing
@testable import Enforcer

/// Compiler behaviour stated as flows between hosts, checked by walking packets through both ends'
/// rulesets: the source's output chain and the destination's input chain.
@Suite struct CompilerTests {
    static let standard = """
    [host]
    roles = "auto"
    catalog = "cloudcenter"
    version = "4.10"

    [groups]
    CCM_SA = ["198.18.0.10", "fd00::10"]
    MGMTPOSTGRES = ["198.18.0.11"]
    CCO = ["198.18.0.20", "fd00::20"]
    AMQP = ["198.18.0.30"]
    MON = ["198.18.0.40"]
    EXT_SCRIPT_EXECUTOR = ["198.18.0.50"]
    workers = ["198.18.128.0/17"]
    browsers = ["198.19.1.0/24"]
    admin_ssh = ["198.19.0.0/24"]
    """

    /// A deployment: one config shared by every host, each host planned from its own address.
    struct Deployment {
        let config: Config
        func plan(_ address: String) throws -> Plan {
            let roles = try config.resolveRoles(hostAddresses: [IPAddress(address)!])
            return Compiler.compile(config: config, roles: roles)
        }

        /// Whether a new connection from `src` to `dst:port` passes both hosts' rulesets.
        /// Addresses outside the deployment (browsers, workers, admins) have no ruleset of their own.
        func canConnect(_ src: String, _ dst: String, _ port: UInt16, _ proto: TransportProtocol = .tcp) throws -> Bool {
            let p = TracedPacket(from: IPAddress(src)!, to: IPAddress(dst)!, proto, port: port)
            let out = isMember(src) ? Tracer(try plan(src).ruleset).accepts(p, at: .output) : true
            let inp = isMember(dst) ? Tracer(try plan(dst).ruleset).accepts(p, at: .input) : true
            return out && inp
        }

        func isMember(_ address: String) -> Bool {
            (try? config.resolveRoles(hostAddresses: [IPAddress(address)!])) != nil
        }
    }

    static func deployment(_ text: String = standard, edit: (String) -> String = { $0 }) throws -> Deployment {
        Deployment(config: try Config.parse(text: edit(text), file: "deploy.conf"))
    }

    @Test func ccmMayOpen8443OnCCO() throws {
        let d = try Self.deployment()
        #expect(try d.canConnect("198.18.0.10", "198.18.0.20", 8443))
        #expect(try d.canConnect("fd00::10", "fd00::20", 8443))
        #expect(try d.canConnect("198.18.0.20", "198.18.0.10", 8443)) // two-way
    }

    @Test func monMayNotOpen5432OnCCO() throws {
        let d = try Self.deployment()
        #expect(try !d.canConnect("198.18.0.40", "198.18.0.20", 5432))
        #expect(try d.canConnect("198.18.0.10", "198.18.0.11", 5432)) // CCM_SA -> MGMTPOSTGRES is the real one
        #expect(try !d.canConnect("198.18.0.20", "198.18.0.11", 5432)) // CCO is not a database client
    }

    @Test func oneSidedFlowWorksAtBothEndsUnlessStrict() throws {
        // AMQP's table accepts 5671 from CCO; CCO's tables never list egress 5671.
        let d = try Self.deployment()
        #expect(try d.canConnect("198.18.0.20", "198.18.0.30", 5671))
        let strict = try Self.deployment { $0.replacingOccurrences(of: "version = \"4.10\"", with: "version = \"4.10\"\nstrict = true") }
        #expect(try !strict.canConnect("198.18.0.20", "198.18.0.30", 5671))
        let ccoOut = Tracer(try strict.plan("198.18.0.20").ruleset)
        #expect(!ccoOut.accepts(TracedPacket(from: IPAddress("198.18.0.20")!, to: IPAddress("198.18.0.30")!, port: 5671), at: .output))
    }

    @Test func workersReachAMQPButNotTheManager() throws {
        let d = try Self.deployment()
        #expect(try d.canConnect("198.18.200.7", "198.18.0.30", 5671))
        #expect(try d.canConnect("198.18.200.7", "198.18.0.30", 7789))
        #expect(try !d.canConnect("198.18.200.7", "198.18.0.10", 8443))
        #expect(try !d.canConnect("198.18.200.7", "198.18.0.30", 22))
    }

    @Test func browsersGetTheUIOnly() throws {
        let d = try Self.deployment()
        #expect(try d.canConnect("198.19.1.5", "198.18.0.10", 443))
        #expect(try !d.canConnect("198.19.1.5", "198.18.0.10", 8443))
        #expect(try !d.canConnect("198.19.2.5", "198.18.0.10", 443)) // not a browser address
    }

    @Test func udpCorosyncBetweenTheDatabasePair() throws {
        let d = try Self.deployment(Self.standard + "\nMGMTPOSTGRES_MASTER = [\"198.18.0.12\"]\nMGMTPOSTGRES_SLAVE = [\"198.18.0.13\"]\n")
        #expect(try d.canConnect("198.18.0.12", "198.18.0.13", 5405, .udp))
        #expect(try !d.canConnect("198.18.0.12", "198.18.0.13", 5405, .tcp))
        #expect(try d.canConnect("198.18.0.13", "198.18.0.12", 2224))
    }

    @Test func adminSSHIsAlwaysKeptOpen() throws {
        let d = try Self.deployment()
        for host in ["198.18.0.10", "198.18.0.11", "198.18.0.20", "198.18.0.30", "198.18.0.40", "198.18.0.50"] {
            #expect(try d.canConnect("198.19.0.9", host, 22), "\(host)")
        }
        // Cloudify agents have no SSH row, the failsafe still opens it.
        let cfy = try Config.parse(text: """
            [host]
            roles = ["AGENT"]
            catalog = "cloudify"
            [groups]
            MANAGER = ["198.18.1.1"]
            admin_ssh = ["198.19.0.0/24"]
            """, file: "c.conf")
        let t = Tracer(Compiler.compile(config: cfy, roles: ["AGENT"]).ruleset)
        #expect(t.accepts(TracedPacket(from: IPAddress("198.19.0.9")!, to: IPAddress("198.18.1.7")!, port: 22), at: .input))
    }

    /// Lockout protection, exhaustively: for every role of both catalogs (and all roles at once),
    /// every feature set and ingress mode, the emitted ruleset lets admin_ssh (IPv4 and IPv6) open
    /// TCP 22, keep it open, and get the replies out, even where the catalog has no SSH row.
    @Test(arguments: ["cloudcenter", "cloudify"])
    func everyEmittedRulesetKeepsAdminSSH(catalogName: String) throws {
        let catalog = try Catalog.load(catalogName)
        let features = catalog.features.map { "\"\($0.name)\"" }.joined(separator: ", ")
        let admins = [("198.19.0.9", "198.18.0.7"), ("fd00:19::9", "fd00:18::7")]
        var rulesets = 0
        for roles in catalog.roles.map({ [$0.name] }) + [catalog.roles.map(\.name)] {
            for featureList in ["", features] {
                for ingress in ["enforce", "audit"] {
                    let config = try Config.parse(text: """
                        [host]
                        roles = [\(roles.map { "\"\($0)\"" }.joined(separator: ", "))]
                        catalog = "\(catalogName)"
                        features = [\(featureList)]
                        [enforce]
                        ingress = "\(ingress)"
                        [groups]
                        admin_ssh = ["198.19.0.0/24", "fd00:19::/64"]
                        """, file: "failsafe.conf")
                    let tracer = Tracer(Compiler.compile(config: config, roles: roles).ruleset)
                    rulesets += 1
                    for (admin, host) in admins {
                        let (a, h) = (IPAddress(admin)!, IPAddress(host)!)
                        let context = "\(catalogName) \(roles.count == 1 ? roles[0] : "all roles") features [\(featureList)] ingress \(ingress) from \(admin)"
                        #expect(tracer.trace(TracedPacket(from: a, to: h, port: 22), hook: .input).verdict == .accept, "\(context)")
                        #expect(tracer.accepts(TracedPacket(from: a, to: h, port: 22, conntrack: .establishedOriginal), at: .input), "\(context)")
                        #expect(tracer.accepts(TracedPacket(from: h, to: a, sourcePort: 22, port: 40000, conntrack: .reply), at: .output), "\(context)")
                        // Accepted by a rule, not by audit mode's accept-all tail.
                        let decided = tracer.trace(TracedPacket(from: a, to: h, port: 22), hook: .input)
                        #expect(decided.ruleIndex != nil && decided.comment != "audit: would be dropped", "\(context): decided by \(decided.comment ?? "policy")")
                    }
                }
            }
        }
        #expect(rulesets == (catalog.roles.count + 1) * 4)
    }

    @Test func cloudifyAgentsGroupIsTheOnlySource() throws {
        let text = """
            [host]
            roles = "auto"
            catalog = "cloudify"
            [groups]
            MANAGER = ["198.18.1.1"]
            AGENT = ["198.18.1.10", "198.18.1.11"]
            """
        let d = Deployment(config: try Config.parse(text: text, file: "c.conf"))
        for port: UInt16 in [5671, 53229, 53333] {
            #expect(try d.canConnect("198.18.1.10", "198.18.1.1", port))
            #expect(try !d.canConnect("198.18.1.99", "198.18.1.1", port)) // same subnet, not in the group
        }
        #expect(try !d.canConnect("198.18.1.10", "198.18.1.1", 22))
    }

    @Test func removedPeerLosesItsEstablishedConnections() throws {
        let before = try Self.deployment()
        let after = try Self.deployment { $0.replacingOccurrences(of: "CCM_SA = [\"198.18.0.10\", \"fd00::10\"]", with: "CCM_SA = [\"198.18.0.15\"]") }
        let established = TracedPacket(from: IPAddress("198.18.0.10")!, to: IPAddress("198.18.0.20")!, port: 8443, conntrack: .establishedOriginal)
        #expect(Tracer(try before.plan("198.18.0.20").ruleset).accepts(established, at: .input))
        #expect(!Tracer(try after.plan("198.18.0.20").ruleset).accepts(established, at: .input))
        // Its replacement has exactly the old address's access.
        #expect(try after.canConnect("198.18.0.15", "198.18.0.20", 8443))
        // Replies to connections this host made still pass: they are matched by conntrack direction.
        let reply = TracedPacket(from: IPAddress("198.18.0.99")!, to: IPAddress("198.18.0.20")!, sourcePort: 443, port: 40000, conntrack: .reply)
        #expect(Tracer(try after.plan("198.18.0.20").ruleset).accepts(reply, at: .input))
    }

    /// A conntrack helper's expectation (FTP data, SIP media) is "related" too: it must meet the
    /// allow rules like a new connection. Only ICMP errors about a connection pass as related.
    @Test func relatedAcceptsICMPErrorsOnly() throws {
        let cco = Tracer(try Self.deployment().plan("198.18.0.20").ruleset)
        let mon = IPAddress("198.18.0.40")!, me = IPAddress("198.18.0.20")!
        #expect(!cco.accepts(TracedPacket(from: mon, to: me, .tcp, port: 5432, conntrack: .related), at: .input))
        #expect(!cco.accepts(TracedPacket(from: mon, to: me, .udp, port: 5060, conntrack: .related), at: .input))
        #expect(!cco.accepts(TracedPacket(from: me, to: mon, .tcp, port: 5432, conntrack: .related), at: .output))
        for type in [ICMPType.destinationUnreachable, .timeExceeded, .parameterProblem] {
            #expect(cco.accepts(TracedPacket(from: mon, to: me, nil, icmpType: type, conntrack: .related), at: .input), "\(type)")
            #expect(cco.accepts(TracedPacket(from: me, to: mon, nil, icmpType: type, conntrack: .related), at: .output), "\(type)")
        }
        #expect(!cco.accepts(TracedPacket(from: mon, to: me, nil, icmpType: .echoRequest, conntrack: .related), at: .input))
        let v6peer = IPAddress("fd00::99")!, v6me = IPAddress("fd00::20")!
        for type in [ICMPType.v6DestinationUnreachable, .v6TimeExceeded, .v6ParameterProblem] {
            #expect(cco.accepts(TracedPacket(from: v6peer, to: v6me, nil, icmpType: type, conntrack: .related), at: .input), "\(type)")
        }
        #expect(!cco.accepts(TracedPacket(from: v6peer, to: v6me, .tcp, port: 21, conntrack: .related), at: .input))
    }

    @Test func peerReplacementChangesSetElementsOnly() throws {
        let a = try Self.deployment().plan("198.18.0.20").ruleset
        let b = try Self.deployment { $0.replacingOccurrences(of: "AMQP = [\"198.18.0.30\"]", with: "AMQP = [\"198.18.0.31\"]") }
            .plan("198.18.0.20").ruleset
        #expect(a.chains == b.chains)
        #expect(a.sets.map(\.name) == b.sets.map(\.name))
        #expect(a.set(named: "AMQP_v4")?.elements != b.set(named: "AMQP_v4")?.elements)
    }

    @Test func emptyGroupsProduceNothing() throws {
        let plan = try Self.deployment().plan("198.18.0.20")
        let text = NftRenderer.render(plan.ruleset)
        #expect(!text.contains("CCO_LB"))   // not populated
        #expect(!text.contains("MON_v6"))   // MON has no IPv6 address
        #expect(plan.ruleset.set(named: "AMQP_v6") == nil)
    }

    @Test func equalPortsToOneGroupMerge() throws {
        let out = try Self.deployment().plan("198.18.0.20").ruleset.chain(named: "output")!
        let toMon = out.rules.filter { $0.matches.contains(.addressInSet(.destination, .ipv4, set: "MON_v4")) }
        #expect(toMon.count == 1)
        #expect(toMon.first?.matches.contains(.ports(.destination, .tcp, [PortRange(4560), PortRange(8443), PortRange(8881)])) == true)
    }

    @Test func ruleCountDoesNotGrowWithPeers() throws {
        let few = try Self.deployment().plan("198.18.0.20").ruleset
        let many = try Self.deployment { text in
            let hosts = (1...2000).map { "\"198.18.\(8 + $0 / 250).\($0 % 250 + 1)\"" }.joined(separator: ", ")
            return text.replacingOccurrences(of: "MON = [\"198.18.0.40\"]", with: "MON = [\(hosts)]")
        }.plan("198.18.0.20").ruleset
        #expect(few.chains.map(\.rules.count) == many.chains.map(\.rules.count))
        // Consecutive hosts are a hash set of one element each, not ranges: the type follows from
        // the config, so replacing one of them stays one element change.
        #expect(many.set(named: "MON_v4")!.interval == false)
        #expect(many.set(named: "MON_v4")!.elements.ranges.count == 2000)
    }

    @Test func versionSelectsTheDockerPort() throws {
        func egressPorts(_ version: String) throws -> String {
            let d = try Self.deployment { $0.replacingOccurrences(of: "version = \"4.10\"", with: "version = \"\(version)\"") }
            return NftRenderer.render(try d.plan("198.18.0.20").ruleset)
        }
        #expect(try egressPorts("4.5").contains("@EXT_SCRIPT_EXECUTOR_v4 tcp dport 2375 accept"))
        #expect(try egressPorts("4.10").contains("@EXT_SCRIPT_EXECUTOR_v4 tcp dport 2376 accept"))
    }

    @Test func featuresEnableOptionalRows() throws {
        let base = Self.standard + "\nesb_clients = [\"198.19.5.0/24\"]\n"
        let off = try Self.deployment(base)
        let on = try Self.deployment(base) { $0.replacingOccurrences(of: "version = \"4.10\"", with: "version = \"4.10\"\nfeatures = [\"esb\"]") }
        #expect(try !off.canConnect("198.19.5.1", "198.18.0.10", 5671))
        #expect(try on.canConnect("198.19.5.1", "198.18.0.10", 5671))
    }

    @Test func auditModeAcceptsAndLogs() throws {
        let d = try Self.deployment { $0 + "\n[enforce]\ningress = \"audit\"\negress = \"off\"\n" }
        let r = try d.plan("198.18.0.20").ruleset
        #expect(r.chains.map(\.name) == ["input", "forward"])
        // Published container ports are audited like the host's own ports.
        #expect(r.chain(named: "forward")?.rules.last?.matches == [.ctStatusDNAT(true)])
        #expect(r.chain(named: "forward")?.rules.last?.verdict == .accept)
        let input = r.chain(named: "input")!
        #expect(input.policy == .accept)
        #expect(input.rules.last?.verdict == .accept)
        // Every would-be-dropped packet goes to the audit listener: no rate limit, headers only.
        #expect(input.rules.last?.statements == [.counter, .log(prefix: "fwenforcer in audit: ", level: .warn, group: 6600, snaplen: 128)])
        #expect(NftRenderer.render(r).contains("counter log prefix \"fwenforcer in audit: \" group 6600 snaplen 128 accept"))
        #expect(try Self.deployment { $0 + "\n[enforce]\ningress = \"audit\"\naudit_group = 7\n" }.plan("198.18.0.20").ruleset
            .chain(named: "input")?.rules.last?.statements.last == .log(prefix: "fwenforcer in audit: ", level: .warn, group: 7, snaplen: 128))
        #expect(Tracer(r).accepts(TracedPacket(from: IPAddress("198.18.0.40")!, to: IPAddress("198.18.0.20")!, port: 5432), at: .input))
    }

    @Test func cidrGroupsGetIntervalSetsAndHostGroupsHashSets() throws {
        let r = try Self.deployment().plan("198.18.0.30").ruleset
        #expect(r.set(named: "workers_v4")?.interval == true)
        #expect(r.set(named: "CCO_v4")?.interval == false)
    }

    @Test func samePlanBytesForTheSameConfig() throws {
        let a = NftRenderer.render(try Self.deployment().plan("198.18.0.20").ruleset)
        // Same groups written in another order, with redundant spacing.
        let shuffled = try Self.deployment { text in
            text.replacingOccurrences(of: "CCO = [\"198.18.0.20\", \"fd00::20\"]", with: "")
                + "\nCCO = [ \"fd00::20\",   \"198.18.0.20\" ]\n"
        }
        let b = NftRenderer.render(try shuffled.plan("198.18.0.20").ruleset)
        #expect(a == b)
        #expect(JSONRenderer.render(plan: try Self.deployment().plan("198.18.0.20")) == JSONRenderer.render(plan: try shuffled.plan("198.18.0.20")))
    }

    @Test func commentsNameTheCatalogRowsAndFitNft() throws {
        let r = try Self.deployment().plan("198.18.0.20").ruleset
        for c in r.chains { for rule in c.rules { #expect((rule.comment?.utf8.count ?? 0) <= 128) } }
        #expect(NftRenderer.render(r).contains("comment \"CCM_SA#11 CCO#1: For two-way communication between the CCO and CCM VMs.\""))
    }
}
