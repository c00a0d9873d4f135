import Foundation
import Testing
@testable import Enforcer

/// The rendered example the README shows (docs/examples/): the standard CloudCenter lab's shared
/// config, its page and a screenshot of it. The page must be what the current code renders from
/// the committed config, so the picture in the docs never drifts from the product.
/// Regenerate all three with:  FWE_UPDATE_DOCS=1 swift test --filter TopologyExampleTests
@Suite(.enabled(if: dotAvailable && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs Graphviz and the built fwenforcerd"))
struct TopologyExampleTests {
    static let relativeConfig = "docs/examples/cloudcenter-standard.conf"
    static let relativePage = "docs/examples/cloudcenter-standard.html"
    static let relativeScreenshot = "docs/examples/cloudcenter-standard.png"
    /// Wide enough for the diagram at one pixel per point; tall enough for the whole matrix.
    static let window = (1840, 2250)

    static func url(_ relative: String) -> URL { E2E.repoRoot.appendingPathComponent(relative) }

    /// Rendered from the repository root with the relative path, as the page shows the path given.
    static func render() throws -> String {
        let r = try run(["env", "-C", E2E.repoRoot.path, fwenforcerdPath, "check", "--topology", relativeConfig, "--format", "html"])
        guard r.status == 0 else { throw LabError("check --topology \(relativeConfig) --format html: exit \(r.status): \(r.stderr)") }
        return r.stdout
    }

    @Test func theCommittedExampleIsWhatTheCodeRenders() throws {
        let config = try DiagramFixture("cloudcenter-standard").configText
        if ProcessInfo.processInfo.environment["FWE_UPDATE_DOCS"] == "1" {
            try FileManager.default.createDirectory(at: Self.url("docs/examples"), withIntermediateDirectories: true)
            try config.write(to: Self.url(Self.relativeConfig), atomically: true, encoding: .utf8)
            try Self.render().write(to: Self.url(Self.relativePage), atomically: true, encoding: .utf8)
            try #require(HeadlessChromium.available, "chromium is needed for the screenshot")
            _ = try HeadlessChromium.open(Self.url(Self.relativePage), screenshot: Self.url(Self.relativeScreenshot), window: Self.window)
        }
        let how = "regenerate with FWE_UPDATE_DOCS=1 swift test --filter TopologyExampleTests"
        #expect(try String(contentsOf: Self.url(Self.relativeConfig), encoding: .utf8) == config,
                "\(Self.relativeConfig) is not the standard topology's config (Tests/e2e/topologies): \(how)")
        #expect(try String(contentsOf: Self.url(Self.relativePage), encoding: .utf8) == Self.render(),
                "\(Self.relativePage) is not what the code renders from \(Self.relativeConfig): \(how)")
        #expect(FileManager.default.fileExists(atPath: Self.url(Self.relativeScreenshot).path))
    }
}
