/// The HTML page's tables of flows: the source × destination matrix (one cell per pair, the
/// protocol and ports in it, the rows below them and the rows' notes on hover) and the list of
/// every flow with its notes written out, for a printout.
enum FlowMatrixHTML {
    static func matrix(_ graph: FlowGraph, notes: [String: String]) -> String {
        let roles = graph.nodes.filter { !$0.isGroup }.map(\.id)
        let sources = Set(graph.edges.map(\.from)), destinations = Set(graph.edges.map(\.to))
        let rowIDs = graph.nodes.map(\.id).filter { roles.contains($0) || sources.contains($0) }
        let columnIDs = graph.nodes.map(\.id).filter { roles.contains($0) || destinations.contains($0) }
        var cells: [String: [FlowGraph.Edge]] = [:]
        for e in graph.edges { cells["\(e.from)\u{0}\(e.to)", default: []].append(e) }

        var out = ["<table class=\"matrix\">", "<thead><tr><th class=\"corner\">from \u{2193} to \u{2192}</th>"]
        for c in columnIDs {
            out.append("<th class=\"col\(kindClass(graph, c))\" scope=\"col\"><span>\(HTML.escape(graph.node(c)!.title))</span></th>")
        }
        out.append("</tr></thead><tbody>")
        for r in rowIDs {
            out.append("<tr><th class=\"row\(kindClass(graph, r))\" scope=\"row\">\(HTML.escape(graph.node(r)!.title))</th>")
            for c in columnIDs {
                let edges = cells["\(r)\u{0}\(c)"] ?? []
                if edges.isEmpty {
                    out.append("<td class=\"none\"></td>")
                    continue
                }
                out.append("<td>" + edges.map { flowCell($0, graph: graph, notes: notes) }.joined() + "</td>")
            }
            out.append("</tr>")
        }
        out.append("</tbody></table>")
        return out.joined(separator: "\n")
    }

    static func flowCell(_ e: FlowGraph.Edge, graph: FlowGraph, notes: [String: String]) -> String {
        let hover = e.rows.map { id in notes[id].map { $0.isEmpty ? id : "\(id): \($0)" } ?? id }.joined(separator: "\n")
        var html = "<div class=\"flow \(verdictClass(e.verdict))\" title=\"\(HTML.escape(hover))\">"
        html += "<span class=\"ports\">\(HTML.escape(e.portsText))</span>"
        // Row ids wrap between ids, never inside one.
        html += "<span class=\"rows\">" + e.rows.map { "<span>\(HTML.escape($0))</span>" }.joined(separator: " ") + "</span>"
        if let dropped = droppedText(e, graph: graph) { html += "<span class=\"dropped\">\(HTML.escape(dropped))</span>" }
        return html + "</div>"
    }

    /// Every flow, one line each, with the notes of its rows.
    static func list(_ graph: FlowGraph, notes: [String: String]) -> String {
        var out = ["<table class=\"flows\">",
                   "<thead><tr><th>from</th><th>to</th><th>protocol and ports</th><th>verdict</th><th>catalog rows and their notes</th></tr></thead><tbody>"]
        for e in graph.edges {
            let rows = e.rows.map { id in
                "<li><code>\(HTML.escape(id))</code> \(HTML.escape(notes[id] ?? ""))</li>"
            }.joined()
            out.append("<tr class=\"\(verdictClass(e.verdict))\"><td>\(HTML.escape(graph.node(e.from)!.title))</td>"
                + "<td>\(HTML.escape(graph.node(e.to)!.title))</td><td>\(HTML.escape(e.portsText))</td>"
                + "<td>\(HTML.escape(droppedText(e, graph: graph) ?? "allowed"))</td><td><ul>\(rows)</ul></td></tr>")
        }
        out.append("</tbody></table>")
        return out.joined(separator: "\n")
    }

    static func droppedText(_ e: FlowGraph.Edge, graph: FlowGraph) -> String? {
        guard case .blocked(let at) = e.verdict else { return nil }
        let end = at == .egress ? e.from : e.to
        return "dropped at \(graph.node(end)?.title ?? end) \(at.rawValue)"
    }

    static func verdictClass(_ v: DeploymentFlows.Outcome) -> String {
        if case .blocked = v { return "blocked" } else { return "allowed" }
    }

    static func kindClass(_ graph: FlowGraph, _ id: String) -> String {
        graph.node(id)?.isGroup == true ? " group" : ""
    }
}

enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n": out += "&#10;"
            default: out.append(ch)
            }
        }
        return out
    }
}
