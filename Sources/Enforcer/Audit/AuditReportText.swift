import FoundationEssentials

extension AuditReport {
    /// The report as an operator reads it: one line per flow that enforce mode would drop, most
    /// packets first, with the groups of the peer's end, then what the counts leave out.
    public func table() -> String {
        var out: [String] = []
        let mode = auditing.isEmpty
            ? "the daemon is not in audit mode now; these are the counts until \(ISO8601Format.string(updatedAt))"
            : "auditing \(auditing.map(\.rawValue).joined(separator: " and ")) (nflog group \(group.map(String.init) ?? "?"))"
        out.append("Would be dropped in enforce mode, counted since \(ISO8601Format.string(since)); \(mode).")
        for d in Direction.allCases {
            guard let t = totals[d.rawValue], auditing.contains(d) || t.packets > 0 else { continue }
            out.append("\(d.rawValue): \(t.packets) packets in \(t.flows) flows")
        }
        if flows.isEmpty {
            out.append("No flow would be dropped: switching to enforce breaks nothing seen so far.")
        } else {
            out.append("If you switch to enforce, these flows break:")
            let header = ["DIR", "PROTO", "PORT", "SOURCE", "DESTINATION", "PACKETS", "FIRST SEEN", "LAST SEEN", "PEER GROUPS"]
            let rows = flows.map { f -> [String] in
                let port = f.port.map(String.init) ?? f.icmpType.map { "type \($0)" } ?? "-"
                let peer = "\(f.remoteEnd) " + (f.remoteGroups.isEmpty ? "(no group)" : f.remoteGroups.joined(separator: ","))
                return [f.direction == .ingress ? "in" : "out", f.proto, port, f.source, f.destination, String(f.packets),
                        ISO8601Format.string(f.firstSeen), ISO8601Format.string(f.lastSeen), peer]
            }
            var widths = header.map(\.count)
            for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { i, c in
                    i == cells.count - 1 ? c : c.padded(toLength: widths[i])
                }.joined(separator: "  ")
            }
            out.append(line(header))
            out += rows.map(line)
        }
        if leftOutPackets > 0 {
            out.append("Not listed: \(leftOutPackets) packets of about \(leftOutFlowsEstimate) more flows (the report keeps \(maxFlows) flows; raise --audit-max-flows).")
        }
        if lostPackets > 0 {
            out.append("Lost: \(lostPackets) packets the kernel logged but could not deliver to the daemon (in no count above).")
        }
        return out.joined(separator: "\n") + "\n"
    }
}
