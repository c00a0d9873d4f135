/// Published container ports (`docker run -p 5000:5000`, podman, CNI portmap): a connection to one
/// of this host's ports that DNAT rewrites to a local container never reaches the `input` hook. It
/// is rewritten in prerouting (nat, priority dstnat) and routed through `forward` to the bridge.
/// This chain holds those connections to the same ingress allow-list as connections to a host
/// process, so the forward path is not a way around the role's rules.
///
/// Where: the forward hook, on connections conntrack marks as DNATed (`ct status dnat`), matching
/// the connection's *original* destination port (`ct original proto-dst`, the port published on
/// the host, not the container's port it was rewritten to) and the packet's source (DNAT leaves it
/// alone). The alternative, a filter chain in prerouting before DNAT (`dstnat - 10`, as
/// kube-proxy does) on `fib daddr type local`, cannot tell a published port from a host port, so it
/// would have to run the whole ingress chain a second time for every packet to the host, and
/// audit mode would report every flow twice. Here a packet not DNATed costs one conntrack test.
///
/// What this means:
/// - Replies (`ct direction reply`) and the ICMP errors related to an allowed connection pass, as
///   in `input`; every original-direction packet meets the allow rules again, so a peer removed
///   from its group loses its established connections to a container too.
/// - The IPv6 essentials need no rule: neighbour discovery and MLD are never DNATed.
/// - Routed traffic (a host that forwards for others) and the containers' own traffic (a
///   container's egress, masqueraded on its way out, or container to container) are not DNATed:
///   the first rule accepts them, which in netfilter only ends this chain (another table's drop on
///   the hook still applies). The role's egress rules are this host's processes' egress; a
///   container's egress is its own (Docker's `DOCKER-USER` chain is the place to restrict it).
/// - Anything DNAT sends through forward is treated as addressed to this host, including DNAT of
///   routed traffic on a router; fwenforcer is for the hosts of a deployment, not for routers.
/// - The chain's policy is accept; its last rule (`ct status dnat ... drop`) is the default deny.
///   A packet with no conntrack entry (invalid, untracked) matches no `ct` test and meets the policy.
extension Compiler {
    /// The name of the forward-hook chain.
    public static let publishedPortsChainName = "forward"

    /// The chain for `input`'s allow rules (`tcp dport` ones are rewritten to the original port).
    static func publishedPortsChain(allowing inputRules: [Rule], mode: EnforceMode, enforce: Config.Enforce) -> Chain {
        var rules: [Rule] = [
            Rule(matches: [.ctStatusDNAT(false)], verdict: .accept, comment: "not DNATed to a published port"),
            Rule(matches: [.ctDirectionReply], verdict: .accept, comment: "replies of allowed connections"),
        ]
        // The same related-ICMP rules as the input chain has.
        rules += baseRules(.ingress, enforce: enforce).filter { $0.matches.contains(.ctState([.related])) }
        rules += inputRules.flatMap(onOriginalPort)
        rules += tailRules(.ingress, mode: mode, enforce: enforce).map { rule in
            var rule = rule
            rule.matches.insert(.ctStatusDNAT(true), at: 0)
            return rule
        }
        return Chain(name: publishedPortsChainName, hook: .forward, priority: 0, policy: .accept, rules: rules)
    }

    /// An input rule, made to match the port the connection was addressed to on this host: one
    /// rule per port range, as `ct original proto-dst` takes no port set that nft can print.
    static func onOriginalPort(_ rule: Rule) -> [Rule] {
        guard let i = rule.matches.firstIndex(where: { if case .ports(.destination, _, _) = $0 { return true } else { return false } }),
              case .ports(_, let proto, let ranges) = rule.matches[i] else { return [rule] }
        return PortRange.normalize(ranges).map { range in
            var r = rule
            r.matches[i] = .originalDestinationPort(proto, range)
            return r
        }
    }
}
