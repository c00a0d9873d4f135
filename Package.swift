// swift-tools-version:6.0
import PackageDescription

// The shipped code (Enforcer, fwenforcerd) sees only the members of modules its file imports:
// TOMLKit imports Foundation, and without this String's Foundation methods (range(of:),
// trimmingCharacters(in:), ...) would slip in unasked and link Foundation with ICU's 30 MB of data
// (issue 14). Those files import FoundationEssentials instead.
let shippedCode: [SwiftSetting] = [.enableUpcomingFeature("MemberImportVisibility")]

let package = Package(
    name: "fwenforcer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fwenforcerd", targets: ["fwenforcerd"]),
        .library(name: "Enforcer", targets: ["Enforcer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // Exact: Config/TOMLDocument.swift frees what TOMLKit 0.6.0 leaks by reaching into its
        // internals; scripts/check-tomlkit.sh checks them before `make deb` packages a build.
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CNftables",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev", "libmnl-dev"])]
        ),
        .target(
            name: "Enforcer",
            dependencies: [
                "CNftables",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            resources: [
                .embedInCode("Catalog/Data/cloudcenter.toml"),
                .embedInCode("Catalog/Data/cloudify.toml"),
            ],
            swiftSettings: shippedCode
        ),
        .executableTarget(
            name: "fwenforcerd",
            dependencies: [
                "Enforcer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: shippedCode,
            // swiftc links executables with --export-dynamic, which exports every public symbol of
            // the package's modules and makes each one a root the linker's --gc-sections must keep
            // (0.6 MB of the stripped binary). Nothing looks them up: the Swift runtime finds types
            // and conformances through its swift5_* sections, and dlsym is only asked for glibc's.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"])]
        ),
        // `make bench`: plan, apply, peer replacement, read-back and the daemon, against nft, in
        // network namespaces of its own (docs/benchmarks.md).
        .executableTarget(
            name: "fwenforcer-bench",
            dependencies: [
                "Enforcer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `make fuzz` (fuzz/README.md): built with -sanitize=fuzzer -D FUZZING, libFuzzer drives the
        // parsers of outside bytes; in any other build it replays files through them.
        .executableTarget(
            name: "fwenforcer-fuzz",
            dependencies: ["Enforcer"],
            path: "fuzz/harness"
        ),
        .testTarget(
            name: "EnforcerTests",
            dependencies: ["Enforcer"]
        ),
    ]
)
