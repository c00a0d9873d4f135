import CNftables

/// A table's read-back from recorded bytes: the kernel's replies to the chain, set, element and
/// rule dumps, as one buffer of netlink messages, decoded into a `Ruleset` without a socket.
///
/// The bytes take the path `NetlinkBackend.read` gives them (the same message, set, chain and rule
/// decoders, the same set assembly, `Delinearize`), so a fuzzer can feed it what a kernel, or a
/// corrupted reply, might send. Messages are told apart by type, in any order; NLMSG_DONE and
/// ACKs are skipped as the dump loop skips them.
struct TableDump {
    private(set) var chains: [ReceivedMessage] = []
    private(set) var sets: [ReceivedMessage] = []
    private(set) var rules: [ReceivedMessage] = []
    /// Element keys per set name, from the NEWSETELEM messages.
    private(set) var elements: [String: [(key: UInt128, isEnd: Bool)]] = [:]

    private static func type(_ message: nf_tables_msg_types) -> UInt16 {
        UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(message.rawValue)
    }

    /// Sorts the messages of `bytes` by type. Throws what the dump loop throws: a truncated
    /// message, undecodable elements.
    init(messages bytes: ArraySlice<UInt8>) throws(BackendError) {
        guard let messages = splitMessages(bytes) else { throw .protocolViolation("truncated dump message") }
        for m in messages {
            switch m.type {
            case Self.type(NFT_MSG_NEWCHAIN): chains.append(m)
            case Self.type(NFT_MSG_NEWSET): sets.append(m)
            case Self.type(NFT_MSG_NEWRULE): rules.append(m)
            case Self.type(NFT_MSG_NEWSETELEM):
                guard m.bytes.count >= 20 else { throw .protocolViolation("undecodable elements") }
                let set = parseAttributes(m.attributes)[type: NFTA_SET_ELEM_LIST_SET.rawValue]?.string ?? ""
                var keys = elements[set, default: []]
                let ok = Array(m.attributes).withUnsafeBytes { ElementMessages.appendKeys($0, to: &keys) }
                guard ok else { throw .protocolViolation("undecodable elements of set \(set)") }
                elements[set] = keys
            default: continue
            }
        }
    }

    /// The ruleset these messages describe for `table`, as `NetlinkBackend.read` would return it.
    func ruleset(table: String) throws(BackendError) -> Ruleset {
        let assembled = try Self.assemble(table: table, sets: sets, chains: chains, rules: rules) { s throws(BackendError) in
            elements[s.name] ?? []
        }
        for m in rules { _ = RuleMessages.counter(m) } // `counters(table:)` reads the same messages
        return assembled.ruleset
    }

    /// Builds a table's `Ruleset` from its dumped sets, chains and rules (`elements` gives each
    /// set's keys): the read-back's one assembly, for the socket and for recorded bytes. What the
    /// model cannot express (another writer's chains, rules and sets) is listed in `foreign`, in
    /// nft words, rather than failing the read; a message that does not decode is a protocol error.
    static func assemble(table: String, sets: [ReceivedMessage], chains: [ReceivedMessage], rules: [ReceivedMessage],
                         elements: (DumpedSet) throws(BackendError) -> [(key: UInt128, isEnd: Bool)]) throws(BackendError)
        -> (ruleset: Ruleset, foreign: [String]) {
        var foreign: [String] = []
        var named: [NamedSet] = []
        var anonymous: Delinearize.AnonymousSets = [:]
        for m in sets {
            guard let s = SetMessages.decode(m) else { throw .protocolViolation("undecodable set") }
            guard s.table == table else { continue }
            let keys = try elements(s)
            do throws(BackendError) {
                if s.isAnonymous {
                    anonymous[s.name] = try NetlinkBackend.anonymousSet(s, keys)
                } else {
                    named.append(try NetlinkBackend.namedSet(s, keys))
                }
            } catch .unrepresentable(let what) {
                if !s.isAnonymous { foreign.append(what) }
            }
        }
        var decoded: [Chain] = []
        for m in chains {
            guard let c = ChainMessages.decode(m) else { throw .protocolViolation("undecodable chain") }
            guard c.table == table else { continue }
            guard c.type == "filter", let hookNumber = c.hook, let hook = Hook(netfilterHook: hookNumber),
                  let policyCode = c.policy, let policy = Verdict(netfilterCode: Int32(bitPattern: policyCode)) else {
                foreign.append("chain \(c.name) (\(c.describedType))")
                continue
            }
            decoded.append(Chain(name: c.name, hook: hook, priority: c.priority, policy: policy, rules: []))
        }
        for m in rules {
            guard let r = RuleMessages.decode(m) else { throw .protocolViolation("undecodable rule") }
            guard r.table == table else { continue }
            // A rule of a foreign chain goes with its chain.
            guard let i = decoded.firstIndex(where: { $0.name == r.chain }) else { continue }
            do throws(BackendError) {
                decoded[i].rules.append(try Delinearize.rule(r, anonymousSets: anonymous))
            } catch .unrepresentable {
                let comment = r.userdata?.string(Int(NFTNL_UDATA_RULE_COMMENT.rawValue))
                foreign.append("rule in chain \(r.chain): \(ForeignRuleText.describe(r.expressions, comment: comment))")
            }
        }
        decoded.sort(by: Chain.kernelOrder)
        return (Ruleset(tableName: table, sets: named, chains: decoded), foreign)
    }
}
