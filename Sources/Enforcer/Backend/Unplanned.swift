extension Diff {
    /// What the table holds, in fwenforcer's own vocabulary, that fwenforcer neither wrote last
    /// (`written`) nor plans (`desired`): rules and chains added by someone else with objects the
    /// model can express, in nft words, for the log line of the pass that removes them.
    ///
    /// Without a record of what was written (a first pass) nothing can be told apart from an
    /// earlier fwenforcer's own rules, and nothing is reported. Set elements are drift the pass's
    /// element counts already show, not listed here.
    static func unplanned(_ kernel: Ruleset?, written: Ruleset?, desired: Ruleset) -> [String] {
        guard let kernel = kernel?.canonical, let written = written?.canonical else { return [] }
        let desired = desired.canonical
        var out: [String] = []
        for chain in kernel.chains {
            let known = (written.chain(named: chain.name)?.rules ?? []) + (desired.chain(named: chain.name)?.rules ?? [])
            guard written.chain(named: chain.name) != nil || desired.chain(named: chain.name) != nil else {
                out.append("chain \(chain.name) (\(chain.rules.count) rules)")
                continue
            }
            for rule in chain.rules where !known.contains(rule) {
                out.append("rule in chain \(chain.name): \(NftRenderer.render(rule: rule))")
            }
        }
        for set in kernel.sets where written.set(named: set.name) == nil && desired.set(named: set.name) == nil {
            out.append("set \(set.name)")
        }
        return out
    }
}
