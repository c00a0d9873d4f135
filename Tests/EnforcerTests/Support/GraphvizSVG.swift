import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Graphviz's SVG as the diagram tests read it: every node and edge group (`<g class="node">`,
/// `<g class="edge">`) with its `<title>` (the node name, or `from->to`) and the lines of its label.
/// Parsed as XML, so output that a browser or an SVG viewer would refuse fails here too.
struct GraphvizSVG {
    struct Element {
        var title: String
        var texts: [String]
        /// The edge's line is dashed (the diagram's mark of a flow dropped at one end).
        var dashed: Bool
    }

    var nodes: [Element] = []
    var edges: [Element] = []

    /// Lays `dot` out with Graphviz (`dot -Tsvg`) and parses the result.
    static func layout(_ dot: String) throws -> (svg: String, parsed: GraphvizSVG) {
        let r = try run(["dot", "-Tsvg"], input: dot)
        guard r.status == 0 else { throw LabError("dot -Tsvg failed (\(r.status)): \(r.stderr)") }
        return (r.stdout, try parse(r.stdout))
    }

    static func parse(_ svg: String) throws -> GraphvizSVG {
        let delegate = Delegate()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = delegate
        // Graphviz writes an external DTD reference; nothing may be fetched for it.
        parser.shouldResolveExternalEntities = false
        guard parser.parse() else {
            throw LabError("Graphviz SVG is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)")
        }
        return delegate.result
    }

    func edges(from: String, to: String) -> [Element] { edges.filter { $0.title == "\(from)->\(to)" } }

    private final class Delegate: NSObject, XMLParserDelegate {
        var result = GraphvizSVG()
        private enum Kind { case node, edge }
        private var current: (kind: Kind, element: Element, depth: Int)?
        private var depth = 0
        private var text: String?
        private var inTitle = false

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            depth += 1
            if name == "g", current == nil, let cls = attributes["class"], cls == "node" || cls == "edge" {
                current = (cls == "node" ? .node : .edge, Element(title: "", texts: [], dashed: false), depth)
            } else if current != nil {
                switch name {
                case "title": inTitle = true; text = ""
                case "text": text = ""
                case "path": if attributes["stroke-dasharray"] != nil { current!.element.dashed = true }
                default: break
                }
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text? += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            defer { depth -= 1 }
            guard let c = current else { return }
            if name == "title", inTitle {
                current!.element.title = text ?? ""
                inTitle = false
                text = nil
            } else if name == "text" {
                current!.element.texts.append(text ?? "")
                text = nil
            } else if name == "g", depth == c.depth {
                if c.kind == .node { result.nodes.append(current!.element) } else { result.edges.append(current!.element) }
                current = nil
            }
        }
    }
}
