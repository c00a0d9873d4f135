import FoundationEssentials

/// One self-contained HTML page for an auditor: what it was made from, the diagram (inline SVG
/// when Graphviz laid it out), the role × role matrix, every flow with its rows' notes, the
/// findings of the topology check and the hosts. No script, no external resource, no clock: the
/// same config gives the same bytes, and the page opens offline or as a mail attachment.
public enum HTMLRenderer {
    /// - Parameters:
    ///   - diagram: the graph drawn (by role, or per host when asked); the matrix is always by role.
    ///   - dot: the DOT source of `diagram`, shown folded so the diagram can be laid out again.
    ///   - layout: `dot`'s SVG of it, or why there is none.
    public static func render(flows: DeploymentFlows, diagram: FlowGraph, dot: String, layout: Graphviz.Layout,
                              provenance p: DiagramProvenance) -> String {
        let matrix = diagram.grouping == .byRole ? diagram : FlowGraph(flows, grouping: .byRole)
        let report = flows.report
        let errors = report.findings.filter { $0.severity == .error }.count
        let blocked = matrix.edges.filter { if case .blocked = $0.verdict { return true } else { return false } }.count
        let roleCount = Set(report.hosts.flatMap(\.roles)).count
        var out = [
            "<!DOCTYPE html>",
            "<html lang=\"en\">",
            "<head>",
            "<meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"generator\" content=\"fwenforcerd check --topology --format html\">",
            "<title>Allowed flows of \(HTML.escape(p.configPath))</title>",
            "<style>", style, "</style>",
            "</head>",
            "<body>",
            "<header>",
            "<h1>Allowed flows of <code>\(HTML.escape(p.configPath))</code></h1>",
            "<p class=\"summary\">\(report.hosts.count) host addresses in \(roleCount) roles; \(matrix.edges.count - blocked) allowed flows"
                + (blocked > 0 ? ", <strong class=\"bad\">\(blocked) dropped at one end</strong>" : "")
                + "; \(errors) errors, \(report.findings.count - errors) warnings.</p>",
            "<table class=\"provenance\">",
            "<tr><th>config</th><td><code>\(HTML.escape(p.configPath))</code>, sha256 <code class=\"hash\">\(p.configSHA256)</code></td></tr>",
            "<tr><th>catalog</th><td>\(HTML.escape(p.catalogName)) (\(p.catalogBuiltIn ? "built-in" : "file")), "
                + HTML.escape(p.productVersion.map { "product version \($0)" } ?? "no product version")
                + (p.catalogSHA256.map { ", sha256 <code class=\"hash\">\($0)</code>" } ?? ", <strong class=\"bad\">catalog file unreadable: no hash</strong>")
                + (p.catalogDescription.isEmpty ? "" : "<br><span class=\"muted\">\(HTML.escape(p.catalogDescription))</span>") + "</td></tr>",
            "<tr><th>semantics</th><td>\(HTML.escape(p.semanticsLine))</td></tr>",
            "<tr><th>method</th><td>Every host of the config is planned as its daemon would plan it, and every flow is walked as a new "
                + "connection through the compiled rulesets of both ends (the rulesets the kernel is given). A special group's members "
                + "(administrators, browsers, workers, anywhere) run no ruleset of this deployment: a flow to or from a group is the "
                + "role host's end only. Not drawn: what every ruleset allows besides the catalog (loopback, replies, the ICMPv6 "
                + "that IPv6 needs, and ping and DHCP where the semantics above say so).</td></tr>",
            "</table>",
            p.modeWarning.map { "<p class=\"notice\">\(HTML.escape($0)).</p>" } ?? "",
            "</header>",
            "<section id=\"diagram\">",
            "<h2>Diagram</h2>",
        ]
        switch layout {
        case .svg(let svg):
            out.append("<p class=\"legend\"><span class=\"key role\">role (hosts with the same roles, with their count)</span> "
                + "<span class=\"key group\">special group</span> <span class=\"key allowed\">\u{2192} allowed: from the side that opens the connection</span> "
                + "<span class=\"key blocked\">\u{21E2} dropped by one end</span></p>")
            out.append("<div class=\"svg\">\n\(screenSized(svg))\n</div>")
        case .unavailable(let why):
            out.append("<p class=\"notice\">No diagram: \(HTML.escape(why)). Install Graphviz (Debian: <code>apt install graphviz</code>) "
                + "and render the page again, or lay out the DOT source below. The matrix, the flows and the findings are complete without it.</p>")
        }
        out.append("<details><summary>DOT source of the diagram</summary><pre>\(HTML.escape(dot))</pre></details>")
        out += [
            "</section>",
            "<section id=\"matrix\">",
            "<h2>Matrix: who may open connections to whom</h2>",
            "<p class=\"muted\">A row is the side that opens the connection, a column the side that accepts it. Each cell gives the "
                + "protocol and ports, then the catalog rows that allow them; hover a cell for the rows' notes (they are written out under "
                + "<a href=\"#flows\">Flows</a>). <code>failsafe</code> is the administrators' SSH that every ruleset keeps open.</p>",
            "<div class=\"scroll\">", FlowMatrixHTML.matrix(matrix, notes: flows.rowNotes), "</div>",
            "</section>",
            "<section id=\"findings\">",
            "<h2>Findings</h2>",
            findings(report),
            "</section>",
            "<section id=\"flows\">",
            "<h2>Flows</h2>",
            FlowMatrixHTML.list(matrix, notes: flows.rowNotes),
            "</section>",
            "<section id=\"hosts\">",
            "<h2>Hosts</h2>",
            hosts(matrix),
            "</section>",
            "</body>",
            "</html>",
        ]
        return out.joined(separator: "\n") + "\n"
    }

    /// dot sizes its SVG in points, which a browser draws a third larger than the layout; one
    /// pixel per point keeps a deployment of ten roles on one screen with its labels legible.
    static func screenSized(_ svg: String) -> String {
        guard let end = svg.firstIndex(of: ">") else { return svg }
        var head = String(svg[..<end])
        for attribute in ["width", "height"] { head = withoutPoints(head, attribute) }
        return head + svg[end...]
    }

    /// `text` with every `<attribute>="<digits and dots>pt"` rewritten without the `pt` (the
    /// regular expression `attribute="([0-9.]+)pt"`, written out: NSRegularExpression is ICU's).
    static func withoutPoints(_ text: String, _ attribute: String) -> String {
        let bytes = Array(text.utf8), prefix = Array("\(attribute)=\"".utf8), suffix = Array("pt\"".utf8)
        var out: [UInt8] = [], i = 0
        out.reserveCapacity(bytes.count)
        while i < bytes.count {
            if bytes[i...].starts(with: prefix) {
                var j = i + prefix.count
                while j < bytes.count, bytes[j] == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[j]) { j += 1 }
                if j > i + prefix.count, bytes[j...].starts(with: suffix) {
                    out += bytes[i..<j] + [UInt8(ascii: "\"")]
                    i = j + suffix.count
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func findings(_ report: TopologyReport) -> String {
        guard !report.findings.isEmpty else { return "<p>None: no flow is dropped at one end, every present role has its peers, no address is in several roles and every group is used.</p>" }
        var out = ["<ul class=\"findings\">"]
        for f in report.findings {
            let rows = f.rows.isEmpty ? "" : " <span class=\"rows\">\(HTML.escape(f.rows.joined(separator: " ")))</span>"
            out.append("<li class=\"\(f.severity.rawValue)\"><strong>\(f.severity.rawValue)</strong> <code>\(f.kind.rawValue)</code> "
                + "\(HTML.escape(f.message))\(rows)</li>")
        }
        out.append("</ul>")
        return out.joined(separator: "\n")
    }

    static func hosts(_ graph: FlowGraph) -> String {
        var out = ["<table class=\"hosts\"><thead><tr><th>role or group</th><th>addresses</th></tr></thead><tbody>"]
        for n in graph.nodes {
            let members = n.members.isEmpty ? "every address" : n.members.map { "<code>\(HTML.escape($0))</code>" }.joined(separator: " ")
            out.append("<tr class=\"\(n.isGroup ? "group" : "role")\"><th>\(HTML.escape(n.title))</th><td>\(members)</td></tr>")
        }
        out.append("</tbody></table>")
        return out.joined(separator: "\n")
    }

    static let style = """
        body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 14px; color: #1b2733; margin: 24px 32px; }
        h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #c9d3de; }
        code { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
        .hash { word-break: break-all; } .muted { color: #5a6773; } .bad { color: #c0392b; }
        .summary { font-size: 15px; margin: 0 0 10px; }
        table { border-collapse: collapse; }
        .provenance th { text-align: left; vertical-align: top; padding: 3px 14px 3px 0; color: #5a6773; font-weight: normal; }
        .provenance td { padding: 3px 0; }
        .legend .key { display: inline-block; margin-right: 14px; padding: 2px 8px; border-radius: 4px; font-size: 12.5px; }
        .key.role { background: #e3ecf7; border: 1px solid #5b7fa6; } .key.group { background: #fdf1d6; border: 1px solid #b8943f; border-radius: 12px; }
        .key.allowed { color: #2f5d8a; } .key.blocked { color: #c0392b; }
        .svg { overflow-x: auto; border: 1px solid #dde3ea; padding: 8px; }
        .svg svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
        .notice { background: #fff4e5; border: 1px solid #e0a84a; padding: 10px 14px; }
        details { margin-top: 8px; } pre { font-size: 11.5px; background: #f5f7f9; padding: 8px; overflow-x: auto; }
        .scroll { overflow-x: auto; }
        .matrix th, .matrix td { border: 1px solid #c9d3de; padding: 3px 5px; vertical-align: top; font-size: 12px; }
        .matrix th.col { vertical-align: bottom; background: #eef3f8; }
        .matrix th.col span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
        .matrix th.row { text-align: left; white-space: nowrap; background: #eef3f8; }
        .matrix th.group { background: #fdf1d6; } .matrix td.none { background: #fafbfc; }
        .matrix td { min-width: 5.5em; }
        .flow { margin: 1px 0 4px; cursor: help; } .flow .ports { display: block; font-weight: bold; }
        .flow .rows { display: block; color: #5a6773; font-size: 11px; } .flow .rows span { white-space: nowrap; }
        .flow.blocked .ports, .flow .dropped { color: #c0392b; } .flow .dropped { display: block; font-size: 11px; }
        .flows th, .flows td, .hosts th, .hosts td { border: 1px solid #c9d3de; padding: 3px 8px; text-align: left; vertical-align: top; }
        .flows ul { margin: 0; padding-left: 16px; } .flows tr.blocked td { color: #c0392b; }
        .findings li { margin: 3px 0; } .findings li.error strong { color: #c0392b; } .findings li.warning strong { color: #a8660b; }
        .findings .rows { color: #5a6773; font-size: 12px; }
        """
}
