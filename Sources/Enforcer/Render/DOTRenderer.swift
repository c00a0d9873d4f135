import FoundationEssentials

/// Renders a `FlowGraph` as Graphviz DOT: roles as boxes, special groups as ellipses, an arrow from
/// the side that opens the connection, labelled with protocol, ports and the catalog rows that
/// allow it; a connection one end drops is drawn dashed in red and says which end drops it.
public enum DOTRenderer {
    /// A node lists its members up to this many; beyond, it shows the count and the first and last.
    public static let listedMembers = 4
    /// Row ids per label line, so that long row lists wrap instead of widening the edge.
    static let rowsPerLine = 3

    static let font = "DejaVu Sans"
    static let roleFill = "#e3ecf7", groupFill = "#fdf1d6", allowedColor = "#2f5d8a", blockedColor = "#c0392b"

    public static func render(_ graph: FlowGraph, provenance: DiagramProvenance) -> String {
        let title = "Allowed flows of \(provenance.configPath)\nconfig sha256 \(provenance.configSHA256.prefix(12)), \(provenance.catalogLine)"
            + (provenance.modeWarning.map { "\nWARNING: \($0)" } ?? "")
        var out = [
            "// fwenforcer: allowed flows of \(provenance.configPath)",
            "// config sha256 \(provenance.configSHA256)",
            "// \(provenance.catalogLine)",
            "// \(provenance.semanticsLine)",
        ] + (provenance.modeWarning.map { ["// WARNING: \($0)"] } ?? []) + [
            "digraph \"fwenforcer\" {",
            "  graph [rankdir=TB, ranksep=0.45, nodesep=0.15, fontname=\(quote(font)), fontsize=13, labelloc=t,",
            "         label=\(quote(title))]",
            "  node [shape=box, style=\"rounded,filled\", fillcolor=\(quote(roleFill)), color=\"#5b7fa6\", fontname=\(quote(font)), fontsize=12]",
            "  edge [color=\(quote(allowedColor)), fontcolor=\"#1d3c5c\", fontname=\(quote(font)), fontsize=10, arrowsize=0.7]",
        ]
        for n in graph.nodes {
            var attrs = ["label=\(nodeLabel(n, grouping: graph.grouping))"]
            if n.isGroup { attrs += ["shape=ellipse", "style=filled", "fillcolor=\(quote(groupFill))", "color=\"#b8943f\""] }
            out.append("  \(quote(n.id)) [\(attrs.joined(separator: ", "))]")
        }
        for e in graph.edges {
            var attrs = ["label=\(edgeLabel(e, graph: graph))"]
            if case .blocked = e.verdict {
                attrs += ["style=dashed", "color=\(quote(blockedColor))", "fontcolor=\(quote(blockedColor))"]
            }
            out.append("  \(quote(e.from)) -> \(quote(e.to)) [\(attrs.joined(separator: ", "))]")
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    /// HTML-like labels: the name in bold and the addresses and rows in a smaller size keep the
    /// layout compact enough to read a 10-role deployment at its natural size.
    static func nodeLabel(_ n: FlowGraph.Node, grouping: FlowGraph.Grouping) -> String {
        var small: [String] = []
        switch n.kind {
        case .group(let g):
            if n.members.isEmpty && g == "any" { small.append("every address") }
        case .roles:
            if grouping == .byRole && n.members.count > 1 { small.append("\(n.members.count) addresses") }
        }
        small += memberLines(n.members)
        return "<<b>\(escape(n.title))</b>" + (small.isEmpty ? "" : "<br/><font point-size=\"9\">\(small.map(escape).joined(separator: "<br/>"))</font>") + ">"
    }

    static func memberLines(_ members: [String]) -> [String] {
        guard members.count > listedMembers else { return members }
        return ["\(members.first!) \u{2026} \(members.last!)"]
    }

    static func edgeLabel(_ e: FlowGraph.Edge, graph: FlowGraph) -> String {
        var rowLines: [String] = []
        var i = 0
        while i < e.rows.count {
            rowLines.append(e.rows[i..<min(i + rowsPerLine, e.rows.count)].joined(separator: " "))
            i += rowsPerLine
        }
        var label = "<\(escape(e.portsText))<br/><font point-size=\"8\" color=\"#5a6773\">\(rowLines.map(escape).joined(separator: "<br/>"))</font>"
        if case .blocked(let at) = e.verdict {
            let end = at == .egress ? e.from : e.to
            label += "<br/><font point-size=\"8\" color=\"\(blockedColor)\"><b>DROPPED at \(escape(graph.node(end)?.title ?? end)) \(at.rawValue)</b></font>"
        }
        return label + ">"
    }

    /// Text inside an HTML-like label.
    static func escape(_ s: String) -> String {
        s.replacingScalars(["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"])
    }

    /// A DOT double-quoted string: only `"` and `\` need escaping; a newline becomes DOT's
    /// centred line break.
    static func quote(_ s: String) -> String {
        var out = "\""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out + "\""
    }
}
