import Testing
@testable import Enforcer

/// The start-time kernel check: release parsing, version order, and which features a kernel lacks.
@Suite struct KernelRequirementsTests {
    @Test(arguments: [
        ("6.1.0-28-amd64", KernelVersion(6, 1, 0)),
        ("5.10.0-30-cloud-amd64", KernelVersion(5, 10, 0)),
        ("6.18.44-fc-v1045", KernelVersion(6, 18, 44)),
        ("4.19.0", KernelVersion(4, 19, 0)),
        ("6.1-rc3", KernelVersion(6, 1, 0)),
        ("5.13", KernelVersion(5, 13, 0)),
        ("3.10.0-1160.el7.x86_64", KernelVersion(3, 10, 0)),
    ])
    func releasesParse(_ release: String, _ expected: KernelVersion) {
        #expect(KernelVersion(release: release) == expected)
    }

    @Test(arguments: ["", "linux", "6", "6.", ".1.0", "6.x.1"])
    func unparsableReleasesAreNil(_ release: String) {
        #expect(KernelVersion(release: release) == nil)
    }

    /// Numeric, not textual: 5.9 < 5.10 < 5.13 < 6.1, and the patch level counts last.
    @Test func versionsCompareNumerically() {
        #expect(KernelVersion(5, 9) < KernelVersion(5, 10))
        #expect(KernelVersion(5, 10, 200) < KernelVersion(5, 13))
        #expect(KernelVersion(5, 13) < KernelVersion(6, 1))
        #expect(KernelVersion(4, 19, 9) < KernelVersion(4, 19, 10))
        #expect(!(KernelVersion(5, 13) < KernelVersion(5, 13, 0)))
        #expect(KernelVersion(6, 1, 0).description == "6.1")
        #expect(KernelVersion(4, 19, 1).description == "4.19.1")
    }

    @Test func theMinimumIsTheNewestFeature() {
        #expect(KernelRequirements.minimum == KernelVersion(5, 13))
        #expect(KernelRequirements.features.last?.since == KernelRequirements.minimum)
    }

    /// Debian 12 (6.1) and this machine pass; bullseye's 5.10 lacks only table userdata; the boundary
    /// release itself is enough.
    @Test func debianKernels() throws {
        try KernelRequirements.check(release: "6.1.0-28-amd64")
        try KernelRequirements.check(release: "5.13.0")
        try KernelRequirements.check(release: KernelVersion.runningRelease())
        #expect(KernelRequirements.missing(on: KernelVersion(5, 10)).map(\.name) == ["table userdata (NFTA_TABLE_USERDATA)"])
        #expect(KernelRequirements.missing(on: KernelVersion(5, 12, 19)).count == 1)
        #expect(KernelRequirements.missing(on: KernelVersion(3, 13)).count == KernelRequirements.features.count - 1)
    }

    @Test func anOlderKernelIsRefusedNamingWhatItLacks() {
        #expect {
            try KernelRequirements.check(release: "5.10.0-30-amd64")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("kernel 5.10.0-30-amd64 is too old for fwenforcer (needs 5.13 or later)")
                && text.contains("table userdata (NFTA_TABLE_USERDATA), since 5.13")
        }
    }

    /// A release string that says nothing about the version is not a reason to refuse.
    @Test func anUnparsableReleaseIsLetThrough() throws {
        try KernelRequirements.check(release: "custom-build")
    }

    @Test func runningReleaseIsUname() {
        #expect(KernelVersion(release: KernelVersion.runningRelease()) != nil)
    }
}
