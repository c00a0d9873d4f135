// swift-tools-version:6.0
import PackageDescription

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
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
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
            ]
        ),
        .executableTarget(
            name: "fwenforcerd",
            dependencies: [
                "Enforcer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
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
