/// The fail-closed baseline: what the daemon enforces while no valid plan exists (at boot before
/// this host's address is in its group with `roles = "auto"`, or with a config that is invalid,
/// unreadable or missing), so the network never comes up without a firewall.
///
/// Both directions drop by policy. Through go: loopback, the IPv6 essentials (neighbour discovery,
/// MLD, packet-too-big), replies of connections already allowed, ICMP errors related to them,
/// administrators' SSH (TCP 22 from `admin_ssh`) and the DHCP client exchange where the config
/// says so, so the host can still be reached by an operator and get the address it waits for.
/// Nothing else, whatever the catalog or `[enforce] ingress/egress` say: those come from a plan.
public enum Baseline {
    /// What a config tells the baseline: read from a valid config, or leniently from one that
    /// does not validate (each part only when it parses on its own).
    public struct Inputs: Sendable, Hashable {
        public var table: String = defaultTableName
        public var adminSSH: [IPPrefix] = []
        public var enforce = Config.Enforce()

        public init() {}

        public init(_ config: Config) {
            table = config.enforce.table
            adminSSH = config.addresses(of: "admin_ssh")
            enforce = config.enforce
        }
    }

    /// Marks the baseline's admin rule, so status and tests can tell a baseline from a plan.
    public static let adminRuleComment = "baseline: administrators' SSH (no valid plan yet)"

    public static func ruleset(_ inputs: Inputs) -> Ruleset {
        var enforce = inputs.enforce
        // The baseline enforces: an audit or off direction is a plan's choice, not a default.
        enforce.ingress = .enforce
        enforce.egress = .enforce
        var sets: [NamedSet] = []
        var chains: [Chain] = []
        for direction in Direction.allCases {
            var rules = Compiler.baseRules(direction, enforce: enforce)
            if direction == .ingress {
                for family in AddressFamily.allCases {
                    // The same set the plan makes of the group (type from the config, adjacent hosts apart).
                    guard let set = Compiler.groupSet("admin_ssh", family, members: inputs.adminSSH) else { continue }
                    let name = set.name
                    sets.append(set)
                    rules.append(Rule(matches: [.addressInSet(.source, family, set: name), .ports(.destination, .tcp, [PortRange(22)])],
                                      verdict: .accept, comment: adminRuleComment))
                }
            }
            let admin = rules.filter { $0.comment == adminRuleComment }
            rules += Compiler.tailRules(direction, mode: .enforce, enforce: enforce)
            chains.append(Chain(name: direction.hook.rawValue, hook: direction.hook, priority: 0, policy: .drop, rules: rules))
            // Published container ports are closed too, but for administrators' SSH.
            if direction == .ingress { chains.append(Compiler.publishedPortsChain(allowing: admin, mode: .enforce, enforce: enforce)) }
        }
        return Ruleset(tableName: inputs.table, sets: sets, chains: chains)
    }
}
