extension Baseline.Inputs {
    /// What a config that does not validate still tells the baseline: each of `[enforce] table`,
    /// `dhcp_client`, `unresolved` and `[groups] admin_ssh` is taken when it parses on its own
    /// (admin_ssh only when every address in it does), the defaults otherwise. An error elsewhere
    /// in the file (a typo in another group, an unknown role) must not lock the administrators out.
    public static func salvage(text: String, file: String) -> Baseline.Inputs {
        var inputs = Baseline.Inputs()
        guard let doc = try? TOMLDocument(text: text, file: file) else { return inputs }
        defer { doc.release() }
        if let t = try? doc.table(doc.root, "enforce", path: "enforce") {
            if let name = try? doc.string(t, "table", path: "enforce.table"), Catalog.isValidName(name) { inputs.table = name }
            if let dhcp = try? doc.bool(t, "dhcp_client", path: "enforce.dhcp_client") { inputs.enforce.dhcpClient = dhcp }
            if let u = try? doc.string(t, "unresolved", path: "enforce.unresolved"), let policy = UnresolvedPolicy(rawValue: u) {
                inputs.enforce.unresolved = policy
            }
        }
        if let groups = try? doc.table(doc.root, "groups", path: "groups"),
           let items = try? doc.stringArray(groups, "admin_ssh", path: "groups.admin_ssh") {
            let parsed = items.compactMap { try? IPPrefix.parse($0.trimmingCharacters(in: " \t")) }
            if parsed.count == items.count { inputs.adminSSH = parsed }
        }
        return inputs
    }
}
