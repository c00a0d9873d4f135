import Foundation
import Testing
@testable import Enforcer

/// Debian's chromium, headless. As root it needs --no-sandbox; every run gets a throwaway profile.
enum HeadlessChromium {
    static let path = "/usr/bin/chromium"
    static let available = FileManager.default.isExecutableFile(atPath: path)

    /// Opens `page` and returns what the browser made of it: the DOM after load, and every console
    /// message (errors, uncaught exceptions) chromium logged. With `screenshot`, a PNG of the window.
    static func open(_ page: URL, screenshot: URL? = nil, window: (Int, Int) = (1840, 1400)) throws -> (dom: String, console: [String]) {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        var args = ["timeout", "120", path, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--user-data-dir=\(profile.path)", "--enable-logging=stderr", "--v=0",
                    // Nothing on the page may come from the network; should something try, it fails here.
                    "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=\(window.0),\(window.1)"]
        args.append(screenshot.map { "--screenshot=\($0.path)" } ?? "--dump-dom")
        args.append(page.absoluteString)
        let r = try run(args)
        guard r.status == 0 else { throw LabError("chromium exited \(r.status): \(r.stderr.suffix(2000))") }
        let console = r.stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") }.map(String.init)
        return (r.stdout, console)
    }
}

/// `check --topology --format html`, through the CLI as an auditor runs it.
struct TopologyPage {
    let dir: URL
    let config: URL

    init(_ text: String, name: String) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-page-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        config = dir.appendingPathComponent("\(name).conf")
        try text.write(to: config, atomically: true, encoding: .utf8)
    }

    func render(_ format: String = "html", path: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        var argv = [fwenforcerdPath, "check", "--topology", config.path, "--format", format]
        if let path { argv = ["env", "PATH=\(path)"] + argv }
        return try run(argv)
    }

    func write(_ html: String) throws -> URL {
        let page = dir.appendingPathComponent("page.html")
        try html.write(to: page, atomically: true, encoding: .utf8)
        return page
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }
}

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs the built fwenforcerd"))
struct TopologyPageTests {
    /// Self-contained: no script, no stylesheet or image to fetch, no link off the page; the only
    /// URLs are the SVG namespace names, which nothing loads.
    @Test func thePageLoadsNothingFromOutside() throws {
        let f = try DiagramFixture("cloudcenter-standard")
        let page = try TopologyPage(f.configText, name: "cloudcenter-standard")
        defer { page.remove() }
        let r = try page.render()
        #expect(r.status == 0, "\(r.stderr)")
        let html = r.stdout
        for forbidden in ["<script", "<link", "<iframe", "<img", "src=", "@import", "url("] {
            #expect(!html.contains(forbidden), "the page contains \(forbidden)")
        }
        let namespaces = ["xmlns=\"http://www.w3.org/2000/svg\"", "xmlns:xlink=\"http://www.w3.org/1999/xlink\""]
        var rest = html
        for ns in namespaces { rest = rest.replacingOccurrences(of: ns, with: "") }
        #expect(!rest.contains("http:") && !rest.contains("https:"))
        #expect(html.contains("<svg") == dotAvailable)
    }

    /// Without Graphviz the page says so, and still has the matrix, the flows and the findings.
    @Test func withoutGraphvizThePageSaysSoAndKeepsTheRest() throws {
        let f = try DiagramFixture("cloudcenter-standard")
        let page = try TopologyPage(f.configText, name: "cloudcenter-standard")
        defer { page.remove() }
        let r = try page.render(path: page.dir.path) // a PATH with no dot on it
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("No diagram: Graphviz (dot) is not installed"))
        #expect(!r.stdout.contains("<svg"))
        #expect(r.stdout.contains("<table class=\"matrix\">") && r.stdout.contains("id=\"findings\"") && r.stdout.contains("<table class=\"flows\">"))
        #expect(r.stdout.contains("digraph &quot;fwenforcer&quot; {"), "the DOT source is on the page to lay out elsewhere")
    }

    @Test func theCLIGivesTheSameBytesForTheSameConfig() throws {
        let f = try DiagramFixture("cloudcenter-ha")
        let page = try TopologyPage(f.configText, name: "cloudcenter-ha")
        defer { page.remove() }
        for format in ["dot", "html"] {
            let a = try page.render(format), b = try page.render(format)
            #expect(a.status == 0 && !a.stdout.isEmpty)
            #expect(a.stdout == b.stdout, "\(format) differs between two runs")
        }
    }

    /// With strict = true the one-sided rows break flows: the page is still written (exit 1, as
    /// the check), with each such flow marked in the diagram, the matrix, the flow list and the findings.
    @Test func flowsDroppedAtOneEndAreMarkedEverywhereOnThePage() throws {
        let f = try DiagramFixture("cloudcenter-standard", strict: true)
        let page = try TopologyPage(f.configText, name: "strict")
        defer { page.remove() }
        let r = try page.render()
        #expect(r.status == 1)
        let blocked = f.flows.report.findings.filter { $0.kind == .blockedAtOtherEnd }
        #expect(!blocked.isEmpty)
        #expect(r.stdout.contains("<strong class=\"bad\">"))
        #expect(r.stdout.contains("<div class=\"flow blocked\""))
        #expect(r.stdout.contains("<tr class=\"blocked\">"))
        #expect(r.stdout.components(separatedBy: "<code>blocked-at-other-end</code>").count - 1 == blocked.count)
        #expect(r.stdout.contains("DROPPED at ") == dotAvailable)
    }

    /// A dot that fails gives a page that says why, not a broken diagram.
    @Test func aFailingGraphvizIsSaidOnThePage() {
        guard case .unavailable(let why) = Graphviz.layout("digraph {", executable: "/bin/false") else {
            Issue.record("a failing dot gave a diagram")
            return
        }
        #expect(why.contains("/bin/false -Tsvg failed (exit 1)"))
        if dotAvailable, case .unavailable(let why) = Graphviz.layout("digraph { a -> }") {
            #expect(why.contains("syntax error"), "\(why)")
        } else if dotAvailable {
            Issue.record("dot laid out a syntax error")
        }
    }

    /// A bad config is refused with its file, line and key, and nothing is drawn.
    @Test func aBadConfigDrawsNothing() throws {
        let page = try TopologyPage("[host]\nroles = \"auto\"\n[groups]\nCCO = [\"198.18.0.300\"]\n", name: "bad")
        defer { page.remove() }
        for format in ["dot", "html"] {
            let r = try page.render(format)
            #expect(r.status == 1)
            #expect(r.stdout.isEmpty)
            #expect(r.stderr.contains("bad.conf") && r.stderr.contains("groups.CCO"), "\(r.stderr)")
        }
    }

    /// The page in a real browser: it loads without a console message, every role of the
    /// deployment is in its DOM, with the inline diagram, the config's hash and the catalog.
    @Test(.enabled(if: HeadlessChromium.available, "chromium (Debian package chromium) is not installed"),
          arguments: ["cloudcenter-standard", "cloudcenter-ha"])
    func thePageOpensInChromiumWithEveryRole(_ name: String) throws {
        let f = try DiagramFixture(name)
        let page = try TopologyPage(f.configText, name: name)
        defer { page.remove() }
        let r = try page.render()
        #expect(r.status == 0, "\(r.stderr)")
        let opened = try HeadlessChromium.open(try page.write(r.stdout))
        #expect(opened.console.isEmpty, "console: \(opened.console)")
        let dom = opened.dom
        let roles = Set(f.flows.report.hosts.flatMap(\.roles))
        #expect(roles.count >= 10)
        for role in roles.sorted() {
            #expect(dom.contains("<th class=\"row\" scope=\"row\">\(role)</th>"), "\(role) is not a row of the matrix")
            #expect(dom.contains("<span>\(role)</span>"), "\(role) is not a column of the matrix")
            #expect(dom.contains("<title>\(role)</title>") == dotAvailable, "\(role) is not a node of the inline SVG")
        }
        #expect(dom.contains(SHA256.hex(of: Array(f.configText.utf8))))
        #expect(dom.contains("cloudcenter (built-in), product version 4.10, sha256 <code class=\"hash\">\(SHA256.hex(of: Array(Catalog.builtInText("cloudcenter")!.utf8)))</code>"))

        // The console check can fail: a page that logs an error and throws is caught.
        let bad = try page.write("<!DOCTYPE html><html><body><script>console.error('x'); missing();</script></body></html>")
        #expect(try HeadlessChromium.open(bad).console.count == 2)
    }

    @Test(.enabled(if: HeadlessChromium.available, "chromium (Debian package chromium) is not installed"))
    func aScreenshotOfThePage() throws {
        let f = try DiagramFixture("cloudcenter-standard")
        let page = try TopologyPage(f.configText, name: "cloudcenter-standard")
        defer { page.remove() }
        let png = page.dir.appendingPathComponent("page.png")
        let r = try page.render()
        _ = try HeadlessChromium.open(try page.write(r.stdout), screenshot: png, window: (1840, 1400))
        let bytes = try [UInt8](Data(contentsOf: png))
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let width = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(width == 1840 && height == 1400)
        #expect(bytes.count > 100_000, "a blank page compresses far smaller")
    }
}
