/// Pure computation of the transaction that takes the kernel from what it holds to what is wanted.
///
/// Membership changes are element changes only; a chain's rules are replaced (flush + re-add in the
/// same batch) only when they differ; a set whose kind changes is deleted and re-created in the same
/// batch together with the rules that look it up. Nothing outside the table is ever named.
public enum Diff {
    /// The smallest transaction from `live` (nil: the table does not exist) to `desired`.
    /// An empty `operations` list means the kernel already holds `desired`.
    public static func transaction(from live: Ruleset?, to desired: Ruleset, generation: UInt32? = nil) -> Transaction {
        var tx = Transaction(table: desired.tableName, generation: generation)
        guard let current = live, current.tableName == desired.tableName else {
            tx.operations = [.addTable] + creation(of: desired)
            return tx
        }
        let live = current.canonical
        let desired = desired.canonical

        // Sets that must be (re)created: new, or changed in kind (family, interval, comment).
        var recreated: Set<String> = []
        var created: [NamedSet] = []
        var deletedSets: [String] = []
        var elementDeletes: [SetElements] = []
        var elementAdds: [SetElements] = []
        // The kernel lists a table's sets in the order they were added, and a new set goes last.
        // When the first plan replaces the fail-closed baseline, a kept set (the baseline's
        // admin_ssh ones, a few elements) that sorts after a new one is re-created behind it, so
        // the table lists as `nft -f` of the plan does. Not later: re-creating a populated
        // group's set rewrites the chains that look it up and restarts their counters, which a
        // node joining a new group must not cost; there the new set is listed last.
        let overBaseline = live.chains.contains { $0.rules.contains { $0.comment == Baseline.adminRuleComment } }
        let firstNew = overBaseline ? desired.sets.first { live.set(named: $0.name) == nil }?.name : nil
        for want in desired.sets {
            guard let have = live.set(named: want.name) else {
                created.append(want)
                continue
            }
            let behindANewSet = firstNew.map { want.name > $0 } ?? false
            if behindANewSet || SetDefinition(have) != SetDefinition(want) {
                recreated.insert(want.name)
                deletedSets.append(have.name)
                created.append(want)
                continue
            }
            let (gone, new) = elementChanges(from: have.elements, to: want.elements)
            if !gone.isEmpty {
                elementDeletes.append(SetElements(set: want.name, family: want.family, interval: want.interval, ranges: gone))
            }
            if !new.isEmpty {
                elementAdds.append(SetElements(set: want.name, family: want.family, interval: want.interval, ranges: new))
            }
        }
        for have in live.sets where desired.set(named: have.name) == nil {
            deletedSets.append(have.name)
            recreated.insert(have.name)
        }

        // Chains: created, re-created (hook or priority changed), policy-updated, rules replaced.
        var flushes: [String] = []
        var chainDeletes: [String] = []
        var chainAdds: [BaseChain] = []
        var ruleAdds: [(String, Rule)] = []
        for want in desired.chains {
            guard let have = live.chain(named: want.name) else {
                chainAdds.append(BaseChain(want))
                ruleAdds += want.rules.map { (want.name, $0) }
                continue
            }
            if have.hook != want.hook || have.priority != want.priority {
                chainDeletes.append(have.name)
                chainAdds.append(BaseChain(want))
                ruleAdds += want.rules.map { (want.name, $0) }
                continue
            }
            if have.policy != want.policy { chainAdds.append(BaseChain(want)) }
            let usesRecreatedSet = have.rules.contains { $0.referencedSets.contains(where: recreated.contains) }
            if have.rules != want.rules || usesRecreatedSet {
                if !have.rules.isEmpty { flushes.append(want.name) }
                ruleAdds += want.rules.map { (want.name, $0) }
            }
        }
        for have in live.chains where desired.chain(named: have.name) == nil {
            chainDeletes.append(have.name)
        }

        // Kernel order: rules stop using sets before the sets go; deletions before additions, so
        // a replaced interval never overlaps its successor; sets before the rules that look them up.
        tx.operations += flushes.map { .flushChain($0) }
        tx.operations += chainDeletes.map { .deleteChain($0) }
        tx.operations += deletedSets.map { .deleteSet($0) }
        tx.operations += elementDeletes.map { .deleteElements($0) }
        for s in created {
            tx.operations.append(.addSet(SetDefinition(s)))
            if !s.elements.isEmpty { tx.operations.append(.addElements(elements(of: s))) }
        }
        tx.operations += elementAdds.map { .addElements($0) }
        tx.operations += chainAdds.map { .addChain($0) }
        tx.operations += ruleAdds.map { .addRule(chain: $0.0, $0.1) }
        return tx
    }

    /// The full-replace transaction, in one batch checked against `generation` (the read that
    /// found the table `existing` or not, and owned by fwenforcer): `delete table; add table; ...`,
    /// so whatever the table held, foreign objects included, is replaced atomically and the new
    /// table carries the ownership mark. No other table is touched.
    public static func replacement(_ desired: Ruleset, existing: Bool, generation: UInt32) -> Transaction {
        let prefix: [Transaction.Operation] = existing ? [.deleteTable, .addTable] : [.addTable]
        return Transaction(table: desired.tableName, operations: prefix + creation(of: desired), generation: generation)
    }

    /// Everything in `r`, assuming an empty table.
    static func creation(of r: Ruleset) -> [Transaction.Operation] {
        var ops: [Transaction.Operation] = []
        for s in r.sets {
            ops.append(.addSet(SetDefinition(s)))
            if !s.elements.isEmpty { ops.append(.addElements(elements(of: s))) }
        }
        for c in r.chains { ops.append(.addChain(BaseChain(c))) }
        for c in r.chains { ops += c.rules.map { .addRule(chain: c.name, $0) } }
        return ops
    }

    /// All elements of a set, as the transaction carries them: an interval set's ranges, or a
    /// hash set's addresses (its elements are single addresses by construction).
    static func elements(of s: NamedSet) -> SetElements {
        SetElements(set: s.name, family: s.family, interval: s.interval, ranges: s.elements.ranges)
    }

    /// Element-level difference of two sets in the same layout: a stored range (or host) is either
    /// kept exactly or deleted; a range that changes shape is deleted and its new shape added. In
    /// a hash set every element is one address, so a replaced peer is one delete and one add
    /// whatever its neighbours.
    public static func elementChanges(from have: AddressSet, to want: AddressSet) -> (deleted: [AddressRange], added: [AddressRange]) {
        // Both lists are sorted and disjoint, so one merge walk finds the exact matches. A change
        // of a few peers leaves a long equal head and tail: those are skipped with `==` first
        // (cheaper than the ordered walk), so the walk covers only the part that changed.
        var deleted: [AddressRange] = [], added: [AddressRange] = []
        let a = have.ranges, b = want.ranges
        let shorter = min(a.count, b.count)
        var head = 0
        while head < shorter && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < shorter - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        let aEnd = a.count - tail, bEnd = b.count - tail
        var i = head, j = head
        while i < aEnd || j < bEnd {
            if j == bEnd || (i < aEnd && a[i] < b[j]) {
                deleted.append(a[i]); i += 1
            } else if i == aEnd || b[j] < a[i] {
                added.append(b[j]); j += 1
            } else {
                i += 1; j += 1
            }
        }
        return (deleted, added)
    }
}

extension Rule {
    /// Names of the named sets this rule looks up.
    var referencedSets: [String] {
        matches.compactMap { m in
            if case .addressInSet(_, _, let set) = m { return set }
            return nil
        }
    }
}
